"""Export a session as a stand-alone Python script (issue 11): numpy, Keras or PyTorch.

`recipe.py` reads everything a script needs from a session (`Recipe`, its field contract in
that module's docstring); one renderer per framework turns a recipe into the script's text:
numpy_script.py (numpy only), keras_script.py (Keras 3), torch_script.py (PyTorch).
`render(recipe, framework)` picks the renderer.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from app.codegen.recipe import Recipe

FRAMEWORKS: dict[str, str] = {
    "numpy": "app.codegen.numpy_script",
    "keras": "app.codegen.keras_script",
    "pytorch": "app.codegen.torch_script",
}
# The file name's suffix per framework: session-1a2b_numpy.py.
__all__ = ["FRAMEWORKS", "Recipe", "render"]


def render(recipe: Recipe, framework: str) -> str:
    """The script of `recipe` for `framework` (numpy, keras or pytorch).

    ValueError naming the value and the choices for an unknown framework; NotImplementedError
    while a framework's renderer is not written yet. Each renderer module defines
    `render(recipe: Recipe) -> str`.
    """
    module_name = FRAMEWORKS.get(framework)
    if module_name is None:
        raise ValueError(
            f"framework {framework!r} is unknown; expected one of: {', '.join(FRAMEWORKS)}"
        )
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise NotImplementedError(f"the {framework} export is not written yet") from None
    renderer: Callable[[Recipe], str] = module.render
    return renderer(recipe)
