"""The architecture config: the one schema (pydantic), YAML loading, and ``--set`` overrides."""

from __future__ import annotations

import copy
import math
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_serializer,
                      model_validator)

from accelsim.checks import (MAX_ARRAY_DIM, MAX_BYTES, MAX_DEPTH, MAX_DIM, MAX_PJ, MAX_RATE, MAX_UNITS, MIN_RATE,
                             check_depth, read_text)
from accelsim.errors import ConfigError
from kernels.errors import InputError
from kernels.nm.format import MAX_M, NMPattern

__all__ = [
    "ARCH_DIR",
    "DTYPE_BYTES",
    "ArchConfig",
    "EnergyTable",
    "GpuEnergy",
    "GpuUnits",
    "MemoryLevel",
    "SparsitySupport",
    "SystolicCompute",
    "TasdExtension",
    "TensorCoreCompute",
    "apply_overrides",
    "builtin_archs",
    "load_arch",
    "load_yaml",
    "read_yaml",
    "parse_overrides",
    "parse_value",
]


def _arch_dir() -> Path:
    """The built-in configs: the package ``accelsim.model.arch_configs``, which the build maps onto the
    repository's ``arch_configs/`` (the one source); a checkout used without installing has no such
    package and reads that folder directly."""
    try:
        return Path(str(resources.files("accelsim.model.arch_configs")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "arch_configs"


ARCH_DIR = _arch_dir()

#: Bytes per element of each data type the configs may name.
DTYPE_BYTES = {"int4": 0.5, "int8": 1, "fp8": 1, "fp16": 2, "bf16": 2, "tf32": 4, "fp32": 4, "fp64": 8}

OPERANDS = ("input", "weight", "output")

Dtype = Literal["int4", "int8", "fp8", "fp16", "bf16", "tf32", "fp32", "fp64"]


_TileSide = Annotated[int, Field(gt=0, le=MAX_ARRAY_DIM)]
_Rate = Annotated[float, Field(ge=MIN_RATE, le=MAX_RATE)]
_Pj = Annotated[float, Field(ge=0, le=MAX_PJ)]
_Area = Annotated[float, Field(ge=0, le=1e9)]
_Bytes = Annotated[int, Field(gt=0, le=MAX_BYTES)]


class _Strict(BaseModel):
    """Every schema node rejects unknown keys (a typo is an error, never silently ignored) and
    NaN/±inf in any number (no physical quantity is infinite; JSON cannot hold either)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data):
        """``rows: true`` is not 1: a YAML boolean is refused wherever the field holds no boolean."""
        if isinstance(data, dict):
            for name, v in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if field is not None and _holds_bool(v) and not _admits_bool_or_model(field.annotation):
                    raise ValueError(f"field {name}: expected a number or name, got the boolean {v!r}")
        return data


def _admits_bool_or_model(annotation) -> bool:
    """Whether a field's type holds booleans itself or a nested schema node (which checks its own fields)."""
    if annotation is bool or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return True
    return any(_admits_bool_or_model(a) for a in typing.get_args(annotation))


def _holds_bool(v) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, dict):
        return any(map(_holds_bool, v.values()))
    return isinstance(v, (list, tuple)) and any(map(_holds_bool, v))


class SparsitySupport(_Strict):
    """What the compute unit can exploit. Patterns apply to the operands listed."""

    patterns: tuple[str, ...] = ()
    operands: tuple[Literal["weight", "input"], ...] = ("weight",)
    row_wise_mix: bool = False
    skip_unstructured: bool = False
    compressed_levels: tuple[str, ...] = ()
    hierarchical: tuple[str, ...] = ()

    @field_validator("patterns", "hierarchical")
    @classmethod
    def _patterns_parse(cls, v):
        for p in v:
            try:
                NMPattern.parse(p)
            except InputError as exc:
                raise ValueError(str(exc)) from None
        return v

    def nm_patterns(self) -> tuple[NMPattern, ...]:
        """Supported patterns, flat. A hierarchical (HighLight-style) outer pattern H:G over inner
        N:M groups is listed as its flat equivalent (H·N):(G·M), e.g. 2:4 over 2:4 → 4:16."""
        inner = {NMPattern.parse(p) for p in self.patterns}
        out = set(inner)
        for h in (NMPattern.parse(p) for p in self.hierarchical):
            for q in inner:
                if h.m * q.m <= MAX_M:
                    out.add(NMPattern(h.n * q.n, h.m * q.m))
        return tuple(sorted(out))


class TasdExtension(_Strict):
    """The TASD tensor-core extension: run a series of N:M terms with B and partial sums stationary.

    ``units`` TASD units extract N:M terms from activation tiles at run time, each taking
    up to ``cycles_per_block`` cycles per M-element block; ``max_terms`` bounds the series.
    """

    units: int = Field(gt=0, le=MAX_UNITS)
    max_terms: int = Field(default=3, gt=0, le=MAX_M)
    cycles_per_block: int | None = Field(default=None, gt=0, le=MAX_DIM)
    area_mm2_per_unit: _Area = 0.0


class SystolicCompute(_Strict):
    """A rows × cols systolic array, one MAC per PE per cycle, with a WS/OS/IS dataflow.

    ``staging`` times its fixed mapping: ``scalesim`` replays SCALE-Sim's double-buffered SRAM halves
    demand line by demand line (its stalls, docs/scalesim_timing.md §9; costs up to seconds per
    layer), ``pipeline`` the tile pipeline of engine.py (cost independent of layer size).

    ``stationary_buffers`` is how many copies of the stationary operand each PE holds (weights in WS,
    inputs in IS, accumulators in OS). With 1, as in SCALE-Sim, every fold preloads (or drains) and
    refills the skew before its stream starts; with 2, as in the TPU's double-buffered weights, the
    next fold's preload hides under the current fold's stream, so folds run back to back
    (``max(stream, rows)`` each) and the array fills and drains once per layer.
    """

    kind: Literal["systolic"]
    rows: int = Field(gt=0, le=MAX_ARRAY_DIM)
    cols: int = Field(gt=0, le=MAX_ARRAY_DIM)
    dataflow: Literal["ws", "os", "is"]
    staging: Literal["scalesim", "pipeline"] = "scalesim"
    stationary_buffers: Literal[1, 2] = 1
    default_dtype: Dtype = "int8"
    sparsity: SparsitySupport = SparsitySupport()
    tasd: TasdExtension | None = None
    pe_area_um2: _Area = 0.0

    @model_validator(mode="after")
    def _scalesim_is_single_buffered(self) -> SystolicCompute:
        if self.stationary_buffers != 1 and self.staging == "scalesim":
            raise ValueError(f"stationary_buffers = {self.stationary_buffers} needs staging: pipeline "
                             "(SCALE-Sim's staging replays single-buffered PEs)")
        return self

    @property
    def area_mm2(self) -> float:
        return self.rows * self.cols * self.pe_area_um2 / 1e6

    @property
    def peak_macs_per_cycle(self) -> float:
        return float(self.rows * self.cols)


class TensorCoreCompute(_Strict):
    """GPU-style array of ``units`` SMs, each with tensor cores at ``macs_per_cycle[dtype]`` dense MACs/cycle.

    A GEMM is tiled into ``tile_m × tile_n`` output tiles (one per CTA), stepped over K in
    ``tile_k`` chunks; CTAs run in waves of ``units``. ``tile_options`` lists further
    ``[m, n, k]`` CTA tiles the kernel library may pick instead (cuBLAS and CUTLASS choose the
    tile per shape); the mapper keeps the one its roofline estimate says is fastest. ``k_multiple``: where set,
    a K-chunk computes only the K it holds, padded to a multiple of it (a CPU BLAS's micro-kernel runs any K,
    an unrolled loop and its remainder); unset, the last chunk is padded to ``tile_k``, as a GPU mainloop's is.
    """

    kind: Literal["tensor_core"]
    units: int = Field(gt=0, le=MAX_UNITS)
    macs_per_cycle: dict[Dtype, _Rate]
    tile_m: int = Field(default=128, gt=0, le=MAX_ARRAY_DIM)
    tile_n: int = Field(default=128, gt=0, le=MAX_ARRAY_DIM)
    tile_k: int = Field(default=64, gt=0, le=MAX_ARRAY_DIM)
    tile_options: list[tuple[_TileSide, _TileSide, _TileSide]] = []
    k_multiple: int | None = Field(default=None, gt=0, le=MAX_ARRAY_DIM)
    default_dtype: Dtype = "fp16"
    sparsity: SparsitySupport = SparsitySupport()
    tasd: TasdExtension | None = None
    unit_area_mm2: _Area = 0.0

    @property
    def area_mm2(self) -> float:
        return self.units * self.unit_area_mm2

    @field_validator("macs_per_cycle")
    @classmethod
    def _rates_positive(cls, v):
        if not v:
            raise ValueError("needs at least one dtype rate")
        return v

    @property
    def peak_macs_per_cycle(self) -> float:
        return self.units * self.macs_per_cycle[self.default_dtype]


class MemoryLevel(_Strict):
    """One level of the hierarchy. ``bandwidth`` is bytes/cycle read out of this level towards compute.

    ``bypass`` names operands with a path around this level (TPU v1's weights go from DRAM through a
    FIFO into the array, not through its buffer): the mapper's search may stream them past it, each
    fold moving its slice from the level outside. SCALE-Sim's fixed mapping keeps every operand in it.

    ``indexed_bandwidth`` is bytes/cycle of element-granular indexed access (a gather or scatter: per
    element its index, the value read and the value written), where that runs below ``bandwidth``: a
    NumPy fancy-index assignment on a CPU moves ~16 B/ns against ~200 B/ns for a copy. Trace replay
    prices the indexed passes it counts (:mod:`accelsim.replay.numpy_passes`) with it; None prices them
    as streaming. The tile engine has no indexed access.

    ``grouped_bandwidth`` is bytes/cycle of NumPy's rank steps over short groups (a broadcast compare of one
    member of each group of four or eight against the group: an inner loop per group), as a calibration
    measured them with the step's arrays held at this level; trace replay prices a run-time N:M compression's
    rank steps with it; None prices them as streaming.
    """

    name: str
    capacity_bytes: _Bytes | None = None
    bandwidth: _Rate
    write_bandwidth: _Rate | None = None
    indexed_bandwidth: _Rate | None = None
    grouped_bandwidth: _Rate | None = None
    read_pj_per_byte: _Pj = 0.0
    write_pj_per_byte: _Pj = 0.0
    partition: dict[Literal["input", "weight", "output"], Annotated[int, Field(le=MAX_BYTES)]] | None = None
    area_mm2_per_mib: _Area = 0.0
    bypass: tuple[Literal["input", "weight", "output"], ...] = ()

    @property
    def area_mm2(self) -> float:
        """Area from capacity (the partitions' sum where given): scales when a sweep resizes the level."""
        size = sum(self.partition.values()) if self.partition else (self.capacity_bytes or 0)
        return size / 2**20 * self.area_mm2_per_mib

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v):
        """A level's name is a component of ``--set memory.NAME.field`` paths and of energy action names
        (``read.NAME``), so it is one plain word (found by the fuzz test: ``.dram`` crashed pricing)."""
        if not re.fullmatch(r"[A-Za-z0-9_-]+", v):
            raise ValueError(f"memory level name {v!r}: use letters, digits, '_' or '-' only")
        return v

    @field_validator("bypass", mode="before")
    @classmethod
    def _one_operand(cls, v):
        """``--set memory.sram.bypass=weight`` names one operand: a list of it."""
        return [v] if isinstance(v, str) else v

    @field_validator("partition")
    @classmethod
    def _partition_positive(cls, v):
        if v is not None:
            for op, size in v.items():
                if size <= 0:
                    raise ValueError(f"partition size for {op} must be > 0, got {size}")
        return v

    @model_validator(mode="after")
    def _partition_fits(self):
        """Given partitions size the level (a sweep may grow them past ``capacity_bytes``, and area follows
        them), but one partition larger than the whole stated level is a typo (``capacity_bytes: 1``)."""
        if self.partition and self.capacity_bytes is not None:
            op, size = max(self.partition.items(), key=lambda kv: kv[1])
            if size > self.capacity_bytes:
                raise ValueError(f"partition {op} = {size:,} bytes is larger than the whole level "
                                 f"(capacity_bytes {self.capacity_bytes:,})")
        return self

    def capacity_for(self, operand: str) -> float:
        """Bytes this level can devote to ``operand``: its partition, else an equal third, else unbounded."""
        if self.partition is not None:
            return float(self.partition.get(operand, 0))
        if self.capacity_bytes is None:
            return math.inf
        return self.capacity_bytes / len(OPERANDS)


class EnergyTable(_Strict):
    """Per-action energies in pJ (Accelergy-style): the engine counts actions, this prices them."""

    mac_pj: dict[Dtype, _Pj]
    metadata_decode_pj: _Pj = 0.0
    index_select_pj: _Pj = 0.0
    tasd_unit_pj: _Pj = 0.0
    leakage_pj_per_cycle: _Pj = 0.0
    technology_nm: int | None = Field(default=None, gt=0)



def _positive_rates(v: dict) -> dict:
    for dtype, rate in v.items():
        if not rate > 0:
            raise ValueError(f"rate for {dtype} must be > 0, got {rate}")
    return v


class GpuEnergy(_Strict):
    """Per-action energies of the GPU unit model (pJ), and the static power (W)."""

    cuda_core_mac_pj: dict[Dtype, float]
    tensor_core_mac_pj: dict[Dtype, float]
    register_file_pj_per_access: float = Field(ge=0)
    smem_pj_per_byte: float = Field(ge=0)
    static_w: float = Field(ge=0)


class GpuUnits(_Strict):
    """A GPU's separate units for :mod:`accelsim.model.gpu`: per-SM MAC rates of the CUDA cores, tensor
    cores and sparse tensor cores per dtype (sparse: kept MACs per cycle), the shared-memory pipe per
    SM, the CTA tiles and split-K factors library GEMMs choose from, the dtypes whose tensor-core MMA
    reads an MN-major operand straight from shared memory (``mn_major_dtypes``; None: every dtype), the
    K depth in bytes of one main-loop stage of a library GEMM per unit (``k_tile_bytes``; absent: no fill),
    and uncalibrated launch, host-call and loop-step costs. L2 and HBM come from the arch's ``memory`` levels named ``l2`` and ``hbm``."""

    sms: int = Field(gt=0)
    cuda_core_macs_per_cycle: dict[Dtype, float]
    tensor_core_macs_per_cycle: dict[Dtype, float]
    sparse_tensor_core_macs_per_cycle: dict[Dtype, float] = {}
    smem_bytes_per_cycle: float = Field(gt=0)
    tensor_core_tiles: list[tuple[PositiveInt, PositiveInt]] = Field(min_length=1)
    cuda_core_tiles: list[tuple[PositiveInt, PositiveInt]] = Field(min_length=1)
    split_k: list[PositiveInt] = [1]
    min_split_k_depth: int = Field(default=256, gt=0)
    mn_major_dtypes: list[Dtype] | None = None
    k_tile_bytes: dict[Literal["tensor_core", "sparse_tensor_core", "cuda_core"], PositiveInt] = {}
    launch_s: float = Field(ge=0)
    host_call_s: float = Field(ge=0)
    loop_step_s: float = Field(ge=0)
    energy: GpuEnergy

    _rates = field_validator("cuda_core_macs_per_cycle", "tensor_core_macs_per_cycle",
                             "sparse_tensor_core_macs_per_cycle")(_positive_rates)


class ArchConfig(_Strict):
    """A validated architecture: compute unit, memory levels (outermost first), energy table."""

    version: Literal[1] = 1
    name: str
    description: str = ""
    clock_ghz: _Rate
    compute: Annotated[Union[SystolicCompute, TensorCoreCompute], Field(discriminator="kind")]
    memory: tuple[MemoryLevel, ...] = Field(min_length=1)
    energy: EnergyTable
    gpu: GpuUnits | None = None

    @model_serializer(mode="wrap")
    def _drop_absent_gpu(self, handler):
        """Configs without a ``gpu:`` section dump as before it existed (sweep keys stay the same)."""
        out = handler(self)
        if out.get("gpu") is None:
            out.pop("gpu", None)
        return out

    @model_validator(mode="after")
    def _cross_checks(self):
        names = [lvl.name for lvl in self.memory]
        if len(set(names)) != len(names):
            raise ValueError(f"memory level names must be unique, got {names}")
        if self.memory[0].bypass:
            raise ValueError(f"memory.{names[0]}.bypass: the outermost level holds every operand; nothing goes "
                             f"around it, got {list(self.memory[0].bypass)}")
        if any(lvl.bypass for lvl in self.memory) and not isinstance(self.compute, SystolicCompute):
            raise ValueError("memory.*.bypass: a path around a level is searched on systolic arrays only")
        for lvl in self.compute.sparsity.compressed_levels:
            if lvl not in names:
                raise ValueError(f"compute.sparsity.compressed_levels names unknown level {lvl!r}")
        dtype = self.compute.default_dtype
        if dtype not in self.energy.mac_pj:
            raise ValueError(f"energy.mac_pj has no entry for compute.default_dtype {dtype!r}")
        if isinstance(self.compute, TensorCoreCompute) and dtype not in self.compute.macs_per_cycle:
            raise ValueError(f"compute.macs_per_cycle has no entry for default_dtype {dtype!r}")
        return self

    def area_mm2(self) -> dict[str, float]:
        """Silicon area per component (compute, TASD units, each memory level), from per-PE/per-unit and
        per-MiB densities, so it follows the array and buffer sizes."""
        out = {"compute": self.compute.area_mm2}
        if self.compute.tasd is not None:
            out["tasd_units"] = self.compute.tasd.units * self.compute.tasd.area_mm2_per_unit
        out.update({f"memory.{lvl.name}": lvl.area_mm2 for lvl in self.memory})
        return out

    def supports(self, dtype: str) -> bool:
        if isinstance(self.compute, TensorCoreCompute):
            return dtype in self.compute.macs_per_cycle and dtype in self.energy.mac_pj
        return dtype in self.energy.mac_pj


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 base-60 numbers (``2:4`` would read as 124), so N:M patterns stay
    strings; ``1e9`` reads as a float as in YAML 1.2. A key given twice in one mapping is an error
    (PyYAML would keep the last value silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in rs if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*"
               r"|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def load_yaml(text: str):
    """Parse YAML the way every accelsim input is parsed (config files, ``--set``, ``--grid``).

    Nesting beyond :data:`~accelsim.checks.MAX_DEPTH` and integers beyond Python's digit limit are
    YAML errors here, like any other malformed document."""
    try:
        doc = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep (accelsim.checks.MAX_DEPTH)") from None
    except ValueError as exc:  # int() beyond sys.get_int_max_str_digits()
        raise yaml.YAMLError(str(exc).split(":")[0]) from None
    try:
        check_depth(doc, "document")
    except InputError:
        raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep (accelsim.checks.MAX_DEPTH)") from None
    return doc


def read_yaml(path: Path, what: str, error: type[ConfigError] | type[InputError] = ConfigError):
    """The YAML document in the file at ``path`` (UTF-8 text, see :func:`accelsim.checks.read_text`);
    a syntax error becomes one ``error`` line with the file, line and column."""
    text = read_text(path, what, error)
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or (str(exc) if type(exc) is yaml.YAMLError else "invalid YAML")
        raise error(f"{path}: malformed YAML{where}: {problem}") from None


def parse_value(text: str, origin: str = "--set"):
    """One override or grid value as YAML; ``2:4`` and ``[2:4, 1:4]`` keep their patterns as strings."""
    if not text.strip():
        raise ConfigError(f"{origin}: empty value; give a value like key=64")
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        return text


def builtin_archs() -> list[str]:
    """Names of the shipped configs in ``arch_configs/``."""
    return sorted(p.stem for p in ARCH_DIR.glob("*.yaml"))


def _resolve(spec: str | Path) -> Path:
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    candidate = ARCH_DIR / f"{spec}.yaml"
    if candidate.is_file():
        return candidate
    raise ConfigError(
        f"{spec}: no such arch config file or built-in name (built-ins: {', '.join(builtin_archs())})"
    )


def parse_overrides(items: list[str] | None, *, source: str = "--set") -> dict[str, object]:
    """Turn ``["compute.rows=64", ...]`` into ``{"compute.rows": 64}``; values parse as YAML scalars."""
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source} {item!r}: expected key.path=value, e.g. compute.rows=64")
        out[key.strip()] = parse_value(raw, f"{source} {key.strip()}")
    return out


def _set_path(doc: dict, dotted: str, value, origin: str) -> None:
    """Set ``a.b.c`` in a nested dict/list; list items are picked by index or by their ``name``."""
    parts = dotted.split(".")
    node = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            idx = next((j for j, item in enumerate(node) if isinstance(item, dict) and item.get("name") == part), None)
            if idx is None and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
                idx = int(part)
            if idx is None:
                raise ConfigError(f"{origin}: override {dotted!r}: no list item {part!r}")
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{origin}: override {dotted!r}: {'.'.join(parts[:i])} is not a mapping or list")


def apply_overrides(doc: dict, overrides: dict[str, object] | None, origin: str = "--set") -> dict:
    """A deep copy of the raw config ``doc`` with dotted-path ``overrides`` applied (before validation)."""
    doc = copy.deepcopy(doc)
    for key, value in (overrides or {}).items():
        _set_path(doc, key, value, origin)
    return doc


def _describe(exc: ValidationError, origin: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in ("systolic", "tensor_core")))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{origin}: unknown key {loc!r}"
    got = err.get("input")
    shown = f" (got {got!r})" if not isinstance(got, (dict, list)) and got is not None else ""
    return f"{origin}: field {loc or '<root>'}: {msg}{shown}"


def validate_arch(doc: object, origin: str) -> ArchConfig:
    """Validate a raw mapping into an :class:`ArchConfig`; errors name ``origin``, the field and value."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{origin}: expected a YAML mapping at the top level, got {type(doc).__name__}")
    try:
        return ArchConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


def load_arch(spec: str | Path | ArchConfig | dict, overrides: dict[str, object] | None = None) -> ArchConfig:
    """Load and validate an arch config from a path, a built-in name, a dict or an ArchConfig.

    Overrides are dotted paths (``compute.rows``, ``memory.dram.bandwidth`` or ``memory.0.bandwidth``)
    applied before validation, so an override is checked exactly like the file.

    Examples
    --------
    >>> load_arch("systolic_ws_32x32", {"compute.rows": 64}).compute.rows
    64
    """
    if isinstance(spec, ArchConfig):
        doc, origin = spec.model_dump(mode="python"), spec.name
    elif isinstance(spec, dict):
        doc, origin = spec, "<arch dict>"
    else:
        path = _resolve(spec)
        origin = str(path)
        doc = read_yaml(path, "arch config YAML", ConfigError)
    if overrides:
        if not isinstance(doc, dict):
            raise ConfigError(f"{origin}: expected a YAML mapping at the top level")
        doc = apply_overrides(doc, overrides, origin)
    return validate_arch(doc, origin)
