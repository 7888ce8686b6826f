"""Dataset preview and CSV upload of user points."""

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query

from app.api.deps import SettingsDep
from app.api.schemas import CsvPoints, CsvUpload, DatasetPreview
from app.datasets import DATASETS, infer_kind, make_dataset, parse_csv

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

PREVIEW_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such dataset"},
    422: {"description": "Invalid query: the detail names the parameter, value and limit"},
}
CSV_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "Bad CSV (the detail names the line) or text over max_upload_bytes"},
}


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["query" if field != "text" else "body", field],
                                "msg": message, "type": "value_error"}])


def _rows(points: np.ndarray, labels: np.ndarray) -> list[list[float]]:
    rows: list[list[float]] = np.column_stack(
        [points, np.asarray(labels, dtype=np.float64)]
    ).tolist()
    return rows


@router.get("/{name}/preview", responses=PREVIEW_ERRORS)
async def read_dataset_preview(
    name: str,
    n_samples: Annotated[int | None, Query(ge=4)] = None,
    noise: Annotated[float, Query(ge=0.0, le=0.5)] = 0.0,
    train_ratio: Annotated[float, Query(ge=0.1, le=0.9)] = 0.5,
    seed: Annotated[int, Query(ge=0, lt=2**32)] = 0,
) -> DatasetPreview:
    """The dataset's train and test points for a thumbnail or a preview plot."""
    if name not in DATASETS:
        raise HTTPException(404, f"dataset {name!r} not found; expected one of: "
                            + ", ".join(DATASETS))
    try:
        data = make_dataset(name, n_samples, noise, train_ratio, seed)
    except ValueError as error:
        raise _unprocessable("n_samples", str(error)) from None
    return DatasetPreview(
        name=name,
        kind=data.kind,
        n_classes=data.n_classes,
        train=_rows(data.x_train, data.y_train),
        test=_rows(data.x_test, data.y_test),
    )


@router.post("/parse-csv", responses=CSV_ERRORS)
async def create_parsed_csv(upload: CsvUpload, settings: SettingsDep) -> CsvPoints:
    """Points [[x1, x2, label], ...] from CSV text; errors name the line."""
    limit = settings.max_upload_bytes
    size = len(upload.text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise _unprocessable("text", f"text is {size} bytes; max_upload_bytes = {limit}")
    try:
        points, labels = parse_csv(upload.text, kind=upload.problem)
        kind, n_classes = infer_kind(labels)
        if upload.problem == "regression":
            kind, n_classes = "regression", 0
    except ValueError as error:
        raise _unprocessable("text", str(error)) from None
    return CsvPoints(points=_rows(points, labels), n_points=len(points), kind=kind,
                     n_classes=n_classes)
