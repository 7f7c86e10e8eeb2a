"""sketch2anime: rough sketch + colour hints -> anime-style colour illustration.

    from sketch2anime import Sketch2AnimePipeline
    pipe = Sketch2AnimePipeline.from_pretrained("default")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Sketch2AnimePipeline", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import sketch2anime` (the CLI's --help, --version) does not pay for torch.
    if name == "Sketch2AnimePipeline":
        from .inference import Sketch2AnimePipeline

        return Sketch2AnimePipeline
    raise AttributeError(f"module 'sketch2anime' has no attribute {name!r}")
