"""sketch2anime: rough sketch + colour hints -> anime-style colour illustration."""

__version__ = "0.1.0"
