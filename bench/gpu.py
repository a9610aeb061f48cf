"""GPU throughput of lowprec.quantize per format family, its peak extra device memory, and a fake-quant
training step of ResNet-18, each as a ratio against a baseline measured in the same run: a
device-to-device copy of the same tensor (throughput), the output's size (memory), the fp32 step
(training). Needs a CUDA GPU. Usage: python bench/gpu.py [--log2n 28] [--steps 10] [--batch 256]
(--device cpu --log2n 16 --batch 8: a smoke run of the script itself, no figures).

Rows name the backend that ran (lowprec.array.backend): "triton" for every family on a CUDA
tensor; torch's own casts are printed as the peers'. --sweep float|mx adds a kernel's launch
settings; --compile a torch.compile'd fake-fp8 training step (and its graph breaks); --mac-n the MAC
engine's matmul size (issue 17's target: >= 100 G MAC/s at 4096^3).
"""

import argparse
import copy
import time

import torch

import lowprec
from lowprec import nn as lnn
from lowprec.array.backend import choose, choose_for_blocks, choose_for_codebook, choose_for_scaled
from lowprec.sims.resnet import resnet18


DEVICE = "cuda"


def gpu_time(fn, reps: int = 10, warmup: int = 1) -> float:
    """Median seconds of fn() on the GPU (CUDA events), after `warmup` calls."""
    for _ in range(warmup):
        fn()
    if DEVICE == "cpu":  # a smoke run of this script (--device cpu): wall-clock times
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return sorted(times)[len(times) // 2]


def steady_time(fn, steps: int, warmup: int) -> float:
    """Seconds per call of `steps` calls run back to back (one sync at the end), as training runs."""
    for _ in range(warmup):
        fn()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def peak_extra(fn) -> int:
    """Bytes fn() allocated on the device beyond what was allocated before it (its output included)."""
    if DEVICE == "cpu":
        return 0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    del out
    return torch.cuda.max_memory_allocated() - before


def throughput(args):
    n = 1 << args.log2n
    x = torch.randn(n, device=DEVICE)
    y = torch.empty_like(x)
    copy_s = gpu_time(lambda: y.copy_(x))
    print(f"device copy of 2**{args.log2n} float32: {copy_s * 1e3:.3f} ms, "
          f"{2 * x.numel() * 4 / copy_s / 1e12:.2f} TB/s (read + write)")
    print(f"{'format':<22} {'rounding':<13} {'dtype':<9} {'backend':<7} {'ms':>9} {'x copy':>8} {'extra mem / out':>16}")

    def row(label, rounding, t, backend, fn):
        s = gpu_time(fn, reps=args.reps)
        mem = peak_extra(fn) / (t.numel() * t.element_size())
        print(f"{label:<22} {rounding:<13} {str(t.dtype).split('.')[-1]:<9} {backend:<7} {s * 1e3:9.3f} "
              f"{copy_s / s:8.3f} {mem:16.2f}", flush=True)

    for name, rounding in (("fp8_e4m3fn", "nearest_even"), ("fp8_e4m3fn", "stochastic"), ("fp8_e5m2", "nearest_even"),
                           ("fp8_e5m2", "stochastic"), ("bf16", "nearest_even"), ("fp4_e2m1fn", "nearest_even"),
                           ("int8", "nearest_even"), ("fp8_e4m3fn", "toward_zero"), ("fp8_e4m3fn", "odd")):
        row(name, rounding, x, choose(None, x, lowprec.formats.get(name)), lambda: lowprec.quantize(x, name, rounding, seed=1))
    for half in (torch.bfloat16, torch.float16):
        h = x.to(half)
        copy_h = torch.empty_like(h)
        hs = gpu_time(lambda: copy_h.copy_(h))
        for rounding in ("nearest_even", "stochastic"):
            s = gpu_time(lambda: lowprec.quantize(h, "fp8_e4m3fn", rounding, seed=1), reps=args.reps)
            mem = peak_extra(lambda: lowprec.quantize(h, "fp8_e4m3fn", rounding, seed=1)) / (h.numel() * 2)
            print(f"{'fp8_e4m3fn':<22} {rounding:<13} {str(half).split('.')[-1]:<9} {'triton':<7} {s * 1e3:9.3f} "
                  f"{hs / s:8.3f} {mem:16.2f}  (vs a copy of the {str(half).split('.')[-1]} tensor)")
    d = x.double()
    dcopy = torch.empty_like(d)
    ds = gpu_time(lambda: dcopy.copy_(d))
    s = gpu_time(lambda: lowprec.quantize(d, "fp8_e4m3fn", "stochastic", seed=1), reps=args.reps)
    print(f"{'fp8_e4m3fn':<22} {'stochastic':<13} {'float64':<9} {'triton':<7} {s * 1e3:9.3f} {ds / s:8.3f}"
          "                   (vs a copy of the float64 tensor)")
    d = dcopy = None  # free the float64 copies

    small = x[: 1 << 26]
    s = gpu_time(lambda: lowprec.quantize(small, "fp8_e4m3fn", backend="torch"), reps=3)
    print(f"{'fp8_e4m3fn (2**26)':<22} {'nearest_even':<13} {'float32':<9} {'torch':<7} {s * 1e3:9.3f} "
          f"{copy_s * 2**26 / n / s:8.3f}                   (the pure-torch path, for comparison)")
    peers = {
        "torch .to(float8_e4m3fn) round trip": lambda: x.to(torch.float8_e4m3fn).to(torch.float32),
        "torch fake_quantize_per_tensor_affine": lambda: torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127),
    }
    for label, fn in peers.items():
        s = gpu_time(fn)
        print(f"peer: {label:<44} {s * 1e3:9.3f} ms {copy_s / s:8.3f} x copy")

    for name, rounding in (("mxfp8_e4m3", "nearest_even"), ("mxfp8_e4m3", "stochastic"), ("mxint8", "nearest_even"),
                           ("mxfp4_e2m1", "nearest_even"), ("nvfp4", "nearest_even"), ("nvfp4", "stochastic")):
        fmt = lowprec.formats.get(name)
        row(name, rounding, x, choose_for_blocks(None, x, fmt), lambda: lowprec.quantize(x, fmt, rounding, seed=1))
    act = x.view(-1, 64, 8, 8)  # activations blocked along the channels (conv layers)
    row("mxfp8_e4m3 (axis 1)", "nearest_even", act, choose_for_blocks(None, act, lowprec.formats.get("mxfp8_e4m3")),
        lambda: lowprec.quantize(act, "mxfp8_e4m3", axis=1))
    rows = x.view(64, -1)  # 64 channels along axis 0
    others = {
        "binary": (lowprec.BinaryFormat(0.8), ("nearest_even", "stochastic")),
        "ternary (per channel)": (lowprec.TernaryFormat(*[torch.rand(64).numpy() + 0.5 for _ in range(3)]),
                                  ("nearest_even",)),
        "int8 affine": (lowprec.IntAffineFormat(8, 0.03, zero_point=3), ("nearest_even", "stochastic")),
        "int4 affine (per ch.)": (lowprec.IntAffineFormat(4, torch.rand(64).double().numpy() + 0.1), ("nearest_even",)),
        "lut 16": (lowprec.LUTFormat(torch.randn(16).sort().values.double().numpy()), ("nearest_even", "stochastic")),
        "lut 256": (lowprec.LUTFormat(torch.randn(256).sort().values.double().numpy()), ("nearest_even",)),
        "log 4-bit": (lowprec.LogFormat(4), ("nearest_even",)),
    }
    for label, (fmt, modes) in others.items():
        choose_kind = choose_for_codebook if isinstance(fmt, lowprec.LUTFormat) else choose_for_scaled
        for rounding in modes:
            row(label, rounding, rows, choose_kind(None, rows, fmt), lambda: lowprec.quantize(rows, fmt, rounding, seed=1))


def mac(args):
    """The Triton MAC engine on an n x n x n matmul of fp8 operands: G MAC/s end to end (MAC.matmul of
    CUDA tensors: operand checks and counts on the host) and of the kernel alone, against torch's fp32
    matmul (TF32 off) in the same run."""
    import numpy as np

    from lowprec.kernels import gpu
    from lowprec.kernels.params import qparams
    from lowprec.mac.unit import _is_binary16

    n = args.mac_n
    a = lowprec.quantize(torch.randn(n, n, device=DEVICE), "fp8_e4m3fn")
    b = lowprec.quantize(torch.randn(n, n, device=DEVICE), "fp8_e4m3fn")
    torch.backends.cuda.matmul.allow_tf32 = False
    native = gpu_time(lambda: a @ b, reps=3)
    macs = n**3
    print(f"\nMAC engine, fp8_e4m3fn operands, {n}^3 (torch fp32 matmul: {macs / native / 1e9:.0f} G MAC/s)")
    for label, kwargs in (("fp16 acc", dict(acc="fp16")), ("fp16 acc, chunk 64 into fp32", dict(acc="fp16", chunk=64,
                                                                                              chunk_acc="fp32")),
                          ("bf16 acc", dict(acc="bf16")), ("fp32 acc", dict(acc="fp32")),
                          ("fp16 acc, stochastic", dict(acc="fp16", rounding="stochastic", seed=1))):
        unit = lowprec.MAC(**kwargs)
        end_to_end = gpu_time(lambda: unit.matmul(a, b), reps=1)
        dtype = np.float64 if kwargs.get("rounding") == "stochastic" else np.float32
        wide = a.double() if dtype == np.float64 else a
        wide_b = b.double() if dtype == np.float64 else b
        params = {f: qparams(getattr(unit, f), np.dtype(dtype), unit.rounding, None)
                  for f in ("acc", "chunk_acc", "out") if getattr(unit, f) is not None}
        halves = frozenset(r for r in params if dtype == np.float32 and unit.rounding == "nearest_even"
                           and _is_binary16(getattr(unit, r)))
        c = torch.empty_like(wide)
        kernel = gpu_time(lambda: gpu.mac_matmul(wide, wide_b, c, params, unit.mode, chunk=unit.chunk or 0,
                                                 key=unit.seed, offset=0, acc_native=unit._acc_native(),
                                                 chunk_native=unit._chunk_native(), b_broadcast=False,
                                                 halves=halves), reps=1)
        print(f"  {label:<30} end to end {macs / end_to_end / 1e9:8.1f} G MAC/s ({native / end_to_end:.4f}x fp32 "
              f"matmul)   kernel {macs / kernel / 1e9:8.1f} G MAC/s ({native / kernel:.4f}x)", flush=True)
    for label, unit in (("h100_fp8 unit", lowprec.mac_units.get("h100_fp8", inputs="fp8_e4m3fn")),
                        ("h100_fp8 unit, promotion every 128", lowprec.mac_units.get(
                            "h100_fp8", inputs="fp8_e4m3fn", chunk=128, chunk_acc="fp32"))):
        end_to_end = gpu_time(lambda: unit.matmul(a, b), reps=1)
        print(f"  {label:<30} end to end {macs / end_to_end / 1e9:8.1f} G MAC/s ({native / end_to_end:.4f}x fp32 "
              "matmul)", flush=True)


def sweep_mx(args):
    """Launch settings of the e8m0 block kernel (blocks of 32 along the last axis and along axis 1)."""
    import numpy as np

    from lowprec.array.block import scale_threshold
    from lowprec.kernels import gpu
    from lowprec.kernels.params import qparams

    fmt = lowprec.formats.get("mxfp8_e4m3")
    p = qparams(fmt.element, np.dtype(np.float32), "nearest_even", None)
    x = torch.randn(1 << args.log2n, device=DEVICE)
    y = torch.empty_like(x)
    copy_s = gpu_time(lambda: y.copy_(x))
    print("\nlaunch settings of the MX kernel (mxfp8_e4m3, nearest_even), x copy")
    for label, shape in (("last axis", (1, 1 << args.log2n, 1)), ("axis 1", ((1 << args.log2n) // 4096, 64, 64))):
        cells = []
        for units in (1, 2, 4):
            for warps in (1, 2, 4, 8):
                s = gpu_time(lambda: gpu.quantize_e8m0(x.view(shape), y.view(shape), p, 0, 0, block=32,
                                                       elem_emax=fmt.element_emax, threshold=scale_threshold(fmt),
                                                       units=units, num_warps=warps), reps=args.reps)
                cells.append(f"u{units}w{warps}: {copy_s / s:.3f}")
        print(f"  {label:<10} " + "  ".join(cells), flush=True)


def sweep(args):
    """Launch settings of the float kernel (lowprec.kernels.gpu._TUNED holds the chosen ones)."""
    import numpy as np

    from lowprec.kernels import gpu
    from lowprec.kernels.params import qparams

    n = 1 << args.log2n
    fmt = lowprec.formats.get("fp8_e4m3fn")
    print("\nlaunch settings of the float kernel (fp8_e4m3fn), x copy of the same dtype")
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(n, device=DEVICE).to(dtype)
        y = torch.empty_like(x)
        copy_s = gpu_time(lambda: y.copy_(x))
        for mode, rounding in ((0, "nearest_even"), (6, "stochastic")):
            p = qparams(fmt, np.dtype(np.float32), rounding, None)
            variants = ([dict(units=u, num_warps=w) for u in (1, 2, 4, 8) for w in (4, 8)] if mode == 0 else
                        [dict(join=j, num_warps=w) for j in (False, True) for w in (2, 4, 8)])
            cells = []
            for v in variants:
                s = gpu_time(lambda: gpu.quantize_float(x, y, p, mode, 32, 1, **v), reps=args.reps)
                cells.append(f"{','.join(f'{k}={val}' for k, val in v.items())}: {copy_s / s:.3f}")
            print(f"  {str(dtype).split('.')[-1]:<9} {rounding:<13} " + "  ".join(cells), flush=True)


def train_step(spec, x, y, compiled: bool = False):
    """One SGD step of a fresh ResNet-18 on `DEVICE` with the layers swapped by spec (None: fp32);
    compiled: the model under torch.compile."""
    torch.manual_seed(0)
    model = resnet18().to(x.device)
    if spec:
        lnn.swap(model, copy.deepcopy(spec))
    forward = torch.compile(model) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(forward(x), y).backward()
        opt.step()

    return step


def training(args):
    fp8 = {"weight": "fp8_e4m3fn", "input": "fp8_e4m3fn", "grad": "fp8_e5m2"}
    mx = {"weight": "mxfp8_e4m3", "input": "mxfp8_e4m3"}
    specs = {"fp32": None, "fake fp8 (e4m3 w/in, e5m2 grad)": {k: dict(fp8) for k in ("Linear", "Conv2d")},
             "fake MXFP8 (w/in)": {k: dict(mx) for k in ("Linear", "Conv2d")}}
    x = torch.randn(args.batch, 3, 32, 32, device=DEVICE)
    y = torch.randint(0, 10, (args.batch,), device=DEVICE)
    print(f"\nResNet-18 training step, batch {args.batch}, 3x32x32, SGD ({args.steps} steps back to back)")
    base = None
    if args.compile:
        specs["fake fp8, torch.compile"] = specs["fake fp8 (e4m3 w/in, e5m2 grad)"]
    if args.compile:
        model = resnet18().to(DEVICE)
        lnn.swap(model, copy.deepcopy(specs["fake fp8, torch.compile"]))
        explained = torch._dynamo.explain(model)(x)
        print(f"torch.compile of the swapped model: {explained.graph_count} graphs, "
              f"{explained.graph_break_count} breaks", *[b.reason[:300] for b in explained.break_reasons[:3]],
              sep="\n  ")
        torch._dynamo.reset()
    for label, spec in specs.items():
        step = train_step(spec, x, y, compiled="compile" in label)
        t0 = time.perf_counter()
        s = steady_time(step, args.steps, warmup=10)  # past the layers' first checks (and the compile)
        base = base or s
        print(f"{label:<34} {s * 1e3:9.2f} ms {s / base:7.2f}x fp32   ({time.perf_counter() - t0:.1f} s)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log2n", type=int, default=28)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sweep", choices=("float", "mx"), help="a kernel's launch settings")
    ap.add_argument("--mac-n", type=int, default=4096, help="the MAC engine's n x n x n matmul (0: skip)")
    ap.add_argument("--no-train", action="store_true", help="skip the ResNet-18 training steps")
    ap.add_argument("--compile", action="store_true", help="also a torch.compile'd fake-fp8 step")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke run of the script (C core, wall clock)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py needs a CUDA GPU (or --device cpu for a smoke run)")
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (smoke run)"
    print(name, "| torch", torch.__version__, "| lowprec", lowprec.__version__)
    throughput(args)
    if args.mac_n:
        mac(args)
    if args.sweep == "float":
        sweep(args)
    if args.sweep == "mx":
        sweep_mx(args)
    if not args.no_train:
        training(args)


if __name__ == "__main__":
    main()
