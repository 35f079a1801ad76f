"""Step 5 (temporary placeholder; the real stub is being written)."""
from fastapi import APIRouter
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/monitoring", tags=["monitoring"])


@router.get("/traces/{trace_id}")
async def get_trace_details(trace_id: str):
    return JSONResponse({"detail": "Step 5, TODO: not implemented yet"}, status_code=501)


def build_trace_tree(spans):
    raise NotImplementedError("Step 5, TODO 1")


def calculate_total_duration(spans):
    raise NotImplementedError("Step 5, TODO 2")


def calculate_critical_path(tree):
    raise NotImplementedError("Step 5, TODO 3")


def identify_bottlenecks(spans, *, threshold_ms=1000.0, top=5):
    raise NotImplementedError("Step 5, TODO 4")


def build_timeline(spans):
    raise NotImplementedError("Step 5, TODO 5")


def build_service_dependencies(spans):
    raise NotImplementedError("Step 5, TODO 6")
