"""CPU speed of the default U-Net's training step and sampling evaluation, option by option.

Times one training step (forward, backward, AdamW) and one network evaluation of a sampling
batch, on random fields at the default config's network size, in this process, for each option
against the reference (fp32, NCHW, eager, foreach AdamW, 1 thread), and prints the ratio of
each to the reference measured in the same run (above 1: faster):

- fused AdamW (the training default since it measured faster);
- channels_last (NHWC) memory format, network and input;
- bf16 autocast (fast only where the CPU has native bf16: AVX512-BF16 or AMX);
- torch.compile (inductor; its compile time is printed separately);
- 2 threads instead of 1 (the workflow runs one 1-thread job per core instead);
- sampling batch sizes.

Not a test: run it by hand, e.g.

  python benchmarks/cpu_kernels.py --grid 16 24 32
"""

from __future__ import annotations

import argparse
import time

import torch

from htweather.models.networks.unet import UNet


def build(base: int, mult: list[int], blocks: int, emb: int, channels: int = 3) -> UNet:
    torch.manual_seed(0)
    return UNet(channels, channels, base_channels=base, channel_mult=tuple(mult), num_blocks=blocks,
                embedding_dim=emb)


def timed(fn, repeats: int) -> float:
    """Seconds per call, the median of `repeats` after two warm-up calls."""
    fn(), fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def train_step(net, grid: int, batch: int, fused: bool, channels_last: bool, bf16: bool, compiled: bool):
    x, c = torch.randn(batch, 3, grid, grid), torch.randn(batch)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=5e-4, fused=fused)
    f = torch.compile(net) if compiled else net

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = f(x, c).float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def sample_eval(net, grid: int, batch: int, channels_last: bool, bf16: bool, compiled: bool):
    x, c = torch.randn(batch, 3, grid, grid), torch.randn(batch)
    net = net.eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    f = torch.compile(net) if compiled else net

    @torch.no_grad()
    def evaluate():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            f(x, c)
    return evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, nargs="+", default=[16], help="grid points per side")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--channel-mult", type=int, nargs="+", default=[1, 2, 2])
    parser.add_argument("--num-blocks", type=int, default=1)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="training batch")
    parser.add_argument("--sample-batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (a minute or more)")
    args = parser.parse_args()
    arch = (args.base_channels, args.channel_mult, args.num_blocks, args.embedding_dim)
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}; U-Net {arch}; "
          f"training batch {args.batch}, sampling batch {args.sample_batch}; median of {args.repeats}")
    for grid in args.grid:
        print(f"\ngrid {grid} x {grid}")
        torch.set_num_threads(1)
        train_options = [("reference (fp32, NCHW, foreach AdamW)", {}), ("fused AdamW", {"fused": True}),
                         ("channels_last", {"channels_last": True}), ("bf16 autocast", {"bf16": True})]
        if not args.no_compile:
            train_options.append(("torch.compile", {"compiled": True}))
        reference = None
        for label, opts in train_options:
            kwargs = {"fused": False, "channels_last": False, "bf16": False, "compiled": False, **opts}
            t0 = time.perf_counter()
            step = train_step(build(*arch), grid, args.batch, **kwargs)
            step()
            first = time.perf_counter() - t0
            seconds = timed(step, args.repeats)
            reference = reference or seconds
            extra = f"  (first step {first:.1f} s)" if kwargs["compiled"] else ""
            print(f"  train  {label:38s} {seconds * 1e3:8.1f} ms/step   {reference / seconds:5.2f}x{extra}")
        torch.set_num_threads(2)
        seconds = timed(train_step(build(*arch), grid, args.batch, False, False, False, False), args.repeats)
        print(f"  train  {'2 threads':38s} {seconds * 1e3:8.1f} ms/step   {reference / seconds:5.2f}x")
        torch.set_num_threads(1)

        sample_options = [("reference (fp32, NCHW)", {}), ("channels_last", {"channels_last": True}),
                          ("bf16 autocast", {"bf16": True})]
        if not args.no_compile:
            sample_options.append(("torch.compile", {"compiled": True}))
        reference = None
        for label, opts in sample_options:
            kwargs = {"channels_last": False, "bf16": False, "compiled": False, **opts}
            per_member = timed(sample_eval(build(*arch), grid, args.sample_batch, **kwargs), args.repeats // 2) \
                / args.sample_batch
            reference = reference or per_member
            print(f"  sample {label:38s} {per_member * 1e3:8.3f} ms/member {reference / per_member:5.2f}x")
        for batch in (32, 2 * args.sample_batch):
            per_member = timed(sample_eval(build(*arch), grid, batch, False, False, False), args.repeats // 2) / batch
            print(f"  sample {f'batch {batch}':38s} {per_member * 1e3:8.3f} ms/member {reference / per_member:5.2f}x")


if __name__ == "__main__":
    main()
