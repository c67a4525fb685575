"""Energy: price the engine's action counts with the arch's per-action table (Accelergy-style)."""

from __future__ import annotations

from accelsim.model.arch import ArchConfig

__all__ = ["action_energy", "component_of", "mapping_actions", "price"]


def action_energy(arch: ArchConfig, action: str) -> float:
    """pJ per unit of ``action``, a dotted ``component.action`` key such as ``memory.dram.read``.

    Units: MAC actions per MAC, memory actions per byte, ``leakage.cycle`` per cycle.
    """
    e = arch.energy
    parts = action.split(".")
    if parts[0] == "compute" and parts[1] == "mac":
        return e.mac_pj[parts[2]]
    if parts[0] == "memory":
        level = next(lvl for lvl in arch.memory if lvl.name == parts[1])
        return level.read_pj_per_byte if parts[2] == "read" else level.write_pj_per_byte
    table = {
        "compute.metadata_decode": e.metadata_decode_pj,
        "compute.index_select": e.index_select_pj,
        "tasd_unit.op": e.tasd_unit_pj,
        "leakage.cycle": e.leakage_pj_per_cycle,
    }
    try:
        return table[action]
    except KeyError:
        raise KeyError(f"no energy entry for action {action!r}") from None


def component_of(action: str) -> str:
    """The component an action is charged to: ``memory.dram.read`` → ``memory.dram``."""
    return action.rsplit(".", 1)[0] if action.startswith("memory.") else action.split(".")[0]


def price(arch: ArchConfig, actions: dict[str, float]) -> dict[str, float]:
    """Energy in pJ per component: the sum over its actions of count × per-action energy."""
    out: dict[str, float] = {}
    for action, count in actions.items():
        comp = component_of(action)
        out[comp] = out.get(comp, 0.0) + count * action_energy(arch, action)
    return out


def mapping_actions(arch: ArchConfig, mapping) -> dict[str, float]:
    """A mapping's action counts: bytes read and written per level, MACs issued, its own extras
    (metadata decode, index select, TASD unit); leakage is the caller's, since it needs the cycles."""
    actions: dict[str, float] = {}
    for lvl in arch.memory:
        rd, wr = mapping.level_bytes(lvl.name)
        actions[f"memory.{lvl.name}.read"] = rd
        actions[f"memory.{lvl.name}.write"] = wr
    for a, v in mapping.actions.items():
        actions[a] = actions.get(a, 0.0) + v
    mac_key = f"compute.mac.{mapping.dtype}"
    actions[mac_key] = actions.get(mac_key, 0.0) + mapping.issued_macs
    return actions
