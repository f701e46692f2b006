"""Triton's system shared-memory extension: the client's regions, registered with the server.

``keys`` (what a region name and a key may be), ``regions`` (the registry: register, unregister, status,
each region's mapping and lifetime) and ``placement`` (the tensor parameters that place data in a region,
and one request's use of its regions).
"""

from .placement import SHARED_MEMORY_PARAMETERS, Placement, SharedMemoryUse, placement
from .regions import RegionNotFound, RegionStatus, SystemSharedMemory

__all__ = [
    "CUDA_SHARED_MEMORY_REFUSAL",
    "SHARED_MEMORY_PARAMETERS",
    "Placement",
    "RegionNotFound",
    "RegionStatus",
    "SharedMemoryUse",
    "SystemSharedMemory",
    "placement",
]

# What the CUDA shared-memory routes and RPCs answer (UNSUPPORTED: HTTP 501, gRPC UNIMPLEMENTED).
CUDA_SHARED_MEMORY_REFUSAL = (
    "CUDA shared memory is not supported by modelport (CUDA IPC handles are not implemented); pass tensors "
    "through system shared memory (/v2/systemsharedmemory, SystemSharedMemoryRegister) or in the request"
)
