"""DeepSpeed ZeRO-1/2 through accelerate, kept inside memo-zoo's own checkpoint format.

Under ZeRO stage 1 or 2 every rank holds the whole network (in fp32 here: memo-zoo's mixed
precision is its own autocast, so DeepSpeed's bf16 weights never replace the module's), while
the optimizer state is sharded: DeepSpeed flattens each parameter group into one buffer (the
parameters in group order, each at ``round_robin_bit16_offsets``, padded to a multiple of the
world size), cuts it into one equal partition per rank and gives torch's AdamW that partition as
a single flat "parameter". So AdamW's moments exist only as flat slices, one per rank.

``ZeroOptimizerState`` converts between that and torch AdamW's per-parameter ``state_dict``, the
format of ``optimizer.pt`` in every memo-zoo checkpoint:

- ``state_dict()`` all-gathers the flat partitions (a collective: every rank calls it) and cuts
  the whole buffer back into one entry per parameter, numbered as torch numbers them (group by
  group, in order). A checkpoint written under ZeRO-2 therefore loads into a plain one-process run,
  and the reverse.
- ``load_state_dict(state)`` (no collective) takes this rank's slice of every moment and resets the
  rank's fp32 master partition from the module's weights, which the caller has just loaded.

What is not kept exactly: ZeRO steps the flat partition with one step count, so parameters that
torch would leave without state (no gradient yet) get zero moments and the group's step count.
They are the parameters without gradient in every step so far (the last site's audio output,
which nothing reads), whose value does not reach the loss.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from memo_zoo.errors import MemoZooError


def zero_optimizer(optimizer: Any) -> Any | None:
    """DeepSpeed's ZeRO-1/2 optimizer behind accelerate's wrapper, or None for any other optimizer."""
    inner = getattr(optimizer, "optimizer", None)
    return inner if hasattr(inner, "single_partition_of_fp32_groups") else None


class ZeroOptimizerState:
    """torch AdamW ``state_dict`` view of a DeepSpeed ZeRO-1/2 optimizer (see the module docstring)."""

    def __init__(self, zero: Any):
        if getattr(zero, "round_robin_gradients", False):
            raise MemoZooError("DeepSpeed zero_optimization.round_robin_gradients reorders the parameters inside "
                               "the flat optimizer buffers; memo-zoo's checkpoints need it off (the default)")
        if getattr(zero, "cpu_offload", False):
            raise MemoZooError("DeepSpeed offload_optimizer_device: cpu replaces the optimizer memo-zoo checkpoints; "
                               "set offload_optimizer_device: none")
        self.zero = zero

    # ---- layout --------------------------------------------------------------------------------

    def _groups(self) -> list[tuple[int, list[torch.nn.Parameter], list[int], torch.Tensor, Any]]:
        """(group index, its parameters, their offsets in the flat buffer, this rank's flat fp32
        partition, the group's process group) per parameter group."""
        out = []
        for index, params in enumerate(self.zero.bit16_groups):
            offsets = getattr(self.zero, "round_robin_bit16_offsets", None)
            if offsets is not None:
                group_offsets = list(offsets[index])
            else:  # DeepSpeed versions without per-parameter padding: the parameters back to back
                group_offsets, start = [], 0
                for param in params:
                    group_offsets.append(start)
                    start += param.numel()
            out.append((index, list(params), group_offsets, self.zero.single_partition_of_fp32_groups[index],
                        self.zero.real_dp_process_group[index]))
        return out

    # ---- save ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The whole optimizer state in torch AdamW's layout (a collective over the ranks)."""
        base = self.zero.optimizer
        state: dict[int, dict[str, Any]] = {}
        groups: list[dict[str, Any]] = []
        number = 0
        for index, params, offsets, partition, group in self._groups():
            held = base.state.get(partition, {})
            world = dist.get_world_size(group=group)
            whole: dict[str, torch.Tensor] = {}
            # Every rank steps together, so every rank holds the same keys (none before the first step).
            for key in sorted(k for k, v in held.items() if torch.is_tensor(v) and v.numel() == partition.numel()):
                pieces = [torch.empty_like(held[key]) for _ in range(world)]
                dist.all_gather(pieces, held[key].contiguous(), group=group)
                whole[key] = torch.cat(pieces).cpu()
            for param, offset in zip(params, offsets):
                if whole:
                    entry = {key: value[offset:offset + param.numel()].view(param.shape).clone()
                             for key, value in whole.items()}
                    for key, value in held.items():
                        if key not in whole:  # the step count (a scalar tensor) and any other scalar
                            entry[key] = value.detach().cpu().clone() if torch.is_tensor(value) else value
                    state[number] = entry
                number += 1
            options = {key: value for key, value in base.param_groups[index].items() if key != "params"}
            groups.append({**options, "params": list(range(number - len(params), number))})
        return {"state": state, "param_groups": groups}

    # ---- load ----------------------------------------------------------------------------------

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Take this rank's partition of ``saved`` (torch AdamW layout) and reset the fp32 master
        partition from the module's (just loaded) weights."""
        base = self.zero.optimizer
        saved_state = {int(k): v for k, v in saved.get("state", {}).items()}
        saved_groups = saved.get("param_groups", [])
        layout = self._groups()
        if len(saved_groups) != len(layout):
            raise MemoZooError(f"the checkpoint's optimizer has {len(saved_groups)} parameter group(s), the "
                               f"DeepSpeed optimizer {len(layout)}")
        for (index, params, offsets, partition, group), saved_group in zip(layout, saved_groups):
            numbers = list(saved_group["params"])
            if len(numbers) != len(params):
                raise MemoZooError(f"the checkpoint's optimizer group {index} has {len(numbers)} parameters, the "
                                   f"DeepSpeed optimizer {len(params)}")
            world, rank = dist.get_world_size(group=group), dist.get_rank(group=group)
            size = partition.numel()
            entries = [saved_state.get(n) for n in numbers]
            present = [e for e in entries if e]
            if present:
                keys = [k for k, v in present[0].items() if torch.is_tensor(v) and v.dim() > 0]
                flat = {key: torch.zeros(size * world, dtype=partition.dtype) for key in keys}
                for param, offset, entry in zip(params, offsets, entries):
                    if entry:
                        for key in keys:
                            flat[key][offset:offset + param.numel()] = entry[key].reshape(-1).to(partition.dtype)
                mine = {key: value[rank * size:(rank + 1) * size].clone().to(partition.device)
                        for key, value in flat.items()}
                # One step count for the flat partition: the largest (every parameter trained in every
                # step has it; see the module docstring for the others).
                steps = [e["step"] for e in present if "step" in e]
                if steps:
                    step = max(steps, key=lambda s: float(s))
                    mine["step"] = step.clone() if torch.is_tensor(step) else step
                for key, value in present[0].items():
                    if key not in mine:
                        mine[key] = value
                base.state[partition] = mine
            base.param_groups[index].update({k: v for k, v in saved_group.items() if k != "params"})
            # The masters of this rank's partition: the module's weights (views into the flat buffer).
            with torch.no_grad():
                partition.copy_(self.zero.parallel_partitioned_bit16_groups[index][rank].to(partition.dtype))
