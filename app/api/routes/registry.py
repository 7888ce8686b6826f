"""GET /api/registry: every menu of the page, built from the engine's and datasets' registries."""

from typing import Any

from fastapi import APIRouter

from app.api.deps import SettingsDep
from app.api.schemas import Registry
from app.datasets import DATASETS, FEATURES
from app.engine import activations, initializers, losses, optimizers, regularizers
from app.sessions.config import LOSSES_FOR_PROBLEM, SessionConfig

router = APIRouter(prefix="/api", tags=["registry"])

LIMIT_NAMES = (
    "max_sessions", "max_hidden_layers", "max_units_per_layer", "max_samples",
    "max_grid_resolution", "max_frame_rate", "default_frame_rate", "max_speed", "max_epoch_budget",
    "max_upload_bytes", "max_batch_size", "session_idle_seconds", "max_step_epochs",
    "max_predict_points", "grid_extent", "max_body_bytes", "max_ws_message_bytes",
)


def _specs(registry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec.to_dict() for name, spec in registry.items()}


@router.get("/registry")
async def read_registry(settings: SettingsDep) -> Registry:
    """Datasets, activations, losses, optimizers, initializers, regularizers, limits, defaults."""
    return Registry(
        datasets={
            name: {
                "name": name,
                "kind": spec.kind,
                "n_classes": spec.n_classes,
                "default_samples": spec.default_samples,
                "description": spec.description,
                "fixed": spec.fixed,
            }
            for name, spec in DATASETS.items()
        },
        activations=_specs(activations.ACTIVATIONS),
        losses={
            name: {**entry, "problems": [p for p, ls in LOSSES_FOR_PROBLEM.items() if name in ls]}
            for name, entry in _specs(losses.LOSSES).items()
        },
        optimizers=_specs(optimizers.OPTIMIZERS),
        initializers=_specs(initializers.INITIALIZERS),
        regularizers=_specs(regularizers.REGULARIZERS),
        features={name: {"name": name, "label": spec.label} for name, spec in FEATURES.items()},
        problems=list(LOSSES_FOR_PROBLEM),
        limits={name: getattr(settings, name) for name in LIMIT_NAMES},
        defaults=SessionConfig().model_dump(),
    )
