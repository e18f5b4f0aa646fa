"""Ground truth on a GPU: every engine x scheme x offload, run for real through diffusers,
beside the matrix's verdict for the probed machine.

A small Flux-like transformer (``FluxTransformer2DModel`` built from a config in code, no
downloads) is saved with ``save_pretrained`` and then, per case:

  pre           ``from_pretrained(dir, quantization_config=plan.to_diffusers())``
  post          bf16 ``from_pretrained``, ``.to(cuda)``, then quantdoctor's adapter for the
                plan (the same call ``quantdoctor.quantize`` makes, without its check)
  prequantized  a real GGUF file of the model (gguf.GGUFWriter; K-quants and IQ types
                packed by ``quantdoctor.engines.gguf_pack``) through ``from_single_file``;
                for sdnq, the folder ``save_pretrained`` wrote after a pre-mode load, read
                back with plain ``from_pretrained`` (diffusers imports sdnq itself)

and run under each offload:

  none        model.to(cuda)
  model       DiffusionPipeline.enable_model_cpu_offload()
  sequential  DiffusionPipeline.enable_sequential_cpu_offload()
  group       model.enable_group_offload(block_level, num_blocks_per_group=1)
  balanced    SD.Next's balanced offload: accelerate.dispatch_model(force_hooks=True) over
              infer_auto_device_map(no_split_module_classes=model._no_split_modules)

Recorded: did it load and run, the exact error and where (load / setup / forward), peak
GPU memory, forward time (and its ratio to bf16 under the same offload), relative error
of the output against the bf16 model. The driver never imports torch: it probes the
machine with ``quantdoctor.probe()``, evaluates each plan, starts one child process per
engine and mode (each case that may destroy the CUDA context in a child of its own),
restarts a child that died (the case it was running is recorded as the crash), and
writes the confusion table.

usage: python benchmarks/ground_truth.py [--budget S] [--out DIR] [--engines a,b]
                                         [--offloads none,model] [--schemes x,y]
Writes ground_truth.jsonl (raw), ground_truth.json and ground_truth.md under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OFFLOADS = ("none", "model", "sequential", "group", "balanced")
#: quanto last: its CUDA extension is built (1-2 min on a fresh machine) in the background meanwhile
ENGINES = ("bitsandbytes", "torchao", "nncf", "gguf", "sdnq", "quanto")
MODES = {
    "bitsandbytes": ("pre", "post"),
    "quanto": ("pre", "post"),
    "torchao": ("pre", "post"),
    "nncf": ("post",),
    "gguf": ("prequantized", "post"),
    "sdnq": ("pre", "post", "prequantized"),
}
#: (engine, scheme, offload) whose failure can destroy the CUDA context: one child each.
CRASH_PRONE = {("bitsandbytes", s, "group") for s in ("nf4", "fp4")}

CFG = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=2,
    attention_head_dim=128,
    num_attention_heads=4,
    joint_attention_dim=512,
    pooled_projection_dim=256,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
N_IMG, N_TXT = 256, 64
TIMED = 3

# ------------------------------------------------------------------------------ plumbing


class Ctx:
    out = "/tmp/gt_out"
    work = "/tmp/gt_work"
    deadline = time.time() + 3600.0
    t0 = time.time()
    offloads: tuple[str, ...] = OFFLOADS

    @classmethod
    def log_path(cls) -> str:
        return os.path.join(cls.out, "ground_truth.jsonl")


def emit(**rec):
    rec.setdefault("t", round(time.time() - Ctx.t0, 2))
    line = json.dumps(rec, default=str)
    with open(Ctx.log_path(), "a") as f:
        f.write(line + "\n")
    print(line[:400], flush=True)


def err_info(exc):
    tb = traceback.extract_tb(exc.__traceback__)
    last = tb[-1] if tb else None
    libs = (
        "diffusers",
        "accelerate",
        "bitsandbytes",
        "optimum",
        "torchao",
        "nncf",
        "gguf",
        "sdnq",
        "quantdoctor",
    )
    lib = next((f for f in reversed(tb) if any(k in f.filename for k in libs)), None)

    def where(f):
        return (
            None
            if f is None
            else f"{f.filename.split('site-packages/')[-1]}:{f.lineno} in {f.name}"
        )

    return dict(
        error_type=type(exc).__name__,
        error=str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "",
        last_frame=where(last),
        lib_frame=where(lib),
    )


def key(case):
    return (case["engine"], case["scheme"], case["mode"], case["offload"])


def schemes_of(engine):
    from quantdoctor.rules.matrix import load_matrix

    return list(load_matrix().engines[engine].schemes)


def selected(case, patterns):
    """Whether ``case`` matches one of ``engine[:mode[:scheme[:offload]]]`` (``*`` for any)."""
    if not patterns:
        return True
    values = [case["engine"], case["mode"], case["scheme"], case["offload"]]
    return any(
        all(p in ("*", v) for p, v in zip(pat.split(":"), values, strict=False)) for pat in patterns
    )


def all_cases(engines, offloads, only_schemes, patterns=()):
    cases = []
    for engine in engines:
        for mode in MODES[engine]:
            for scheme in schemes_of(engine):
                if only_schemes and scheme not in only_schemes:
                    continue
                for offload in offloads:
                    case = dict(engine=engine, scheme=scheme, mode=mode, offload=offload)
                    if selected(case, patterns):
                        cases.append(case)
    return cases


def jobs_of(cases):
    """(job name, its cases): one child per engine (its first case pays 15-20 s of imports);
    crash-prone cases alone."""
    jobs, single = {}, []
    for c in cases:
        if (c["engine"], c["scheme"], c["offload"]) in CRASH_PRONE:
            single.append((f"{c['engine']}-{c['mode']}-{c['scheme']}-{c['offload']}", [c]))
        else:
            jobs.setdefault(c["engine"], []).append(c)
    return list(jobs.items()) + single


# ------------------------------------------------------------------------------ torch side


def make_inputs(torch, dev):
    gen = torch.Generator().manual_seed(0)
    side = int(N_IMG**0.5)
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    bf = torch.bfloat16
    return dict(
        hidden_states=torch.randn(1, N_IMG, CFG["in_channels"], generator=gen).to(dev, bf),
        encoder_hidden_states=torch.randn(1, N_TXT, CFG["joint_attention_dim"], generator=gen).to(
            dev, bf
        ),
        pooled_projections=torch.randn(1, CFG["pooled_projection_dim"], generator=gen).to(dev, bf),
        timestep=torch.tensor([0.5]).to(dev, bf),
        img_ids=img_ids.reshape(-1, 3).to(dev),
        txt_ids=torch.zeros(N_TXT, 3).to(dev),
        guidance=torch.tensor([3.5]).to(dev, bf),
    )


def forward(model, inp):
    import torch

    with torch.no_grad():
        return model(**inp, return_dict=False)[0]


def model_dir():
    return os.path.join(Ctx.work, "flux_small")


def gguf_path(scheme):
    return os.path.join(Ctx.work, "gguf", f"flux_small-{scheme}.gguf")


def sdnq_dir(scheme):
    return os.path.join(Ctx.work, "sdnq", f"flux_small-{scheme}")


_PIPE = []


def tiny_pipe(transformer):
    if not _PIPE:
        from diffusers import DiffusionPipeline

        class TinyPipe(DiffusionPipeline):
            model_cpu_offload_seq = "transformer"

            def __init__(self, transformer):
                super().__init__()
                self.register_modules(transformer=transformer)

        _PIPE.append(TinyPipe)
    return _PIPE[0](transformer=transformer)


def apply_offload(model, offload, dev):
    """The module to call and what must stay alive with it."""
    if offload == "none":
        return model.to(dev), None
    if offload in ("model", "sequential"):
        pipe = tiny_pipe(model)
        if offload == "model":
            pipe.enable_model_cpu_offload(device=dev)
        else:
            pipe.enable_sequential_cpu_offload(device=dev)
        return pipe.transformer, pipe
    if offload == "group":
        model.enable_group_offload(
            onload_device=dev, offload_type="block_level", num_blocks_per_group=1
        )
        return model, None
    if offload == "balanced":
        import accelerate

        no_split = list(getattr(model, "_no_split_modules", None) or [])
        device_map = accelerate.infer_auto_device_map(
            model, max_memory={0: 64 * 2**30, "cpu": 64 * 2**30}, no_split_module_classes=no_split
        )
        model = accelerate.dispatch_model(
            model,
            device_map=device_map,
            main_device=dev,
            offload_dir=os.path.join(Ctx.work, "offload"),
            force_hooks=True,
        )
        return model, device_map
    raise ValueError(offload)


def load(case, torch, dev, inp):
    """The quantized model for the case, still where its loader leaves it."""
    from diffusers import FluxTransformer2DModel

    from quantdoctor.rules.models import Plan

    plan = Plan(engine=case["engine"], scheme=case["scheme"], mode=case["mode"])
    if case["mode"] == "pre":
        return FluxTransformer2DModel.from_pretrained(
            model_dir(), quantization_config=plan.to_diffusers(), torch_dtype=torch.bfloat16
        )
    if case["mode"] == "prequantized" and case["engine"] == "sdnq":
        path = sdnq_dir(case["scheme"])
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} was not written (see the sdnq writer's log)")
        return FluxTransformer2DModel.from_pretrained(path, torch_dtype=torch.bfloat16)
    if case["mode"] == "prequantized":
        path = gguf_path(case["scheme"])
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} was not written (see the gguf writer's log)")
        return FluxTransformer2DModel.from_single_file(
            path,
            config=model_dir(),
            quantization_config=plan.to_diffusers(),
            torch_dtype=torch.bfloat16,
        )
    from quantdoctor.engines import get_adapter

    model = FluxTransformer2DModel.from_pretrained(model_dir(), torch_dtype=torch.bfloat16).to(dev)
    return get_adapter(plan.engine).apply(model, plan, example_input=inp, progress=None)


def measure(torch, dev, module, inp, ref):
    cuda = dev.type == "cuda"
    y = forward(module, inp)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(TIMED):
        t = time.perf_counter()
        y = forward(module, inp)
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    y = y.float().to(ref.device)
    rel = float((y - ref.float()).norm() / ref.float().norm())
    return dict(fwd_ms=statistics.median(times), rel_err=rel, finite=bool(torch.isfinite(y).all()))


def run_case(case, torch, dev, inp, ref):
    import gc

    rec = dict(kind="case", **case)
    emit(**dict(rec, kind="case_start"))
    cuda = dev.type == "cuda"
    stage, model, module, keep = "load", None, None, None
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t = time.perf_counter()
        model = load(case, torch, dev, inp)
        rec["load_s"] = round(time.perf_counter() - t, 3)
        rec["layers"] = layer_types(model)
        stage = "setup"
        module, keep = apply_offload(model, case["offload"], dev)
        if cuda:
            torch.cuda.synchronize()
            rec["resident_gb"] = (torch.cuda.memory_allocated() - base) / 2**30
            torch.cuda.reset_peak_memory_stats()
        stage = "forward"
        rec.update(measure(torch, dev, module, inp, ref))
        if cuda:
            rec["peak_gb"] = (torch.cuda.max_memory_allocated() - base) / 2**30
        rec["ok"] = rec["finite"]
        if not rec["finite"]:
            rec.update(stage="forward", error_type="NonFinite", error="the output holds NaN or inf")
    except Exception as exc:
        rec.update(ok=False, stage=stage, **err_info(exc))
    finally:
        del model, module, keep
        gc.collect()
        lost = None
        if cuda:
            try:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            except Exception as exc:  # the CUDA context is gone: record it, and die
                lost = exc
    if lost is not None:
        rec.update(
            cuda_context_lost=True, cleanup_error=f"{type(lost).__name__}: {str(lost)[:200]}"
        )
        rec["ok"] = False
        rec.setdefault("stage", "after_forward")
        emit(**rec)
        os._exit(3)
    emit(**rec)
    return rec


def layer_types(model):
    from collections import Counter

    return dict(Counter(type(m).__name__ for m in model.modules() if "Linear" in type(m).__name__))


def torch_device():
    import torch

    return torch, torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prep():
    """The model, its saved copy, the bf16 reference output, and bf16 under every offload."""
    warnings.filterwarnings("ignore")
    torch, dev = torch_device()
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    model = FluxTransformer2DModel(**CFG).to(torch.bfloat16)
    model.save_pretrained(model_dir())
    params = sum(p.numel() for p in model.parameters())
    inp = make_inputs(torch, dev)
    ref = forward(model.to(dev), inp).detach()
    torch.save(
        dict(ref=ref.cpu(), inp={k: v.cpu() for k, v in inp.items()}),
        os.path.join(Ctx.work, "ref.pt"),
    )
    del model
    emit(
        kind="setup",
        params=params,
        bf16_mb=params * 2 / 2**20,
        cfg=CFG,
        n_img=N_IMG,
        n_txt=N_TXT,
        device=str(dev),
        gpu=torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        torch=torch.__version__,
    )
    for offload in Ctx.offloads:
        case = dict(engine="bf16", scheme="bf16", mode="bf16", offload=offload)
        rec = dict(kind="baseline", **case)
        try:
            m = FluxTransformer2DModel.from_pretrained(model_dir(), torch_dtype=torch.bfloat16)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            module, keep = apply_offload(m, offload, dev)
            rec.update(measure(torch, dev, module, inp, ref.to(dev)), ok=True)
            if dev.type == "cuda":
                rec["peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
            del m, module, keep
        except Exception as exc:
            rec.update(ok=False, **err_info(exc))
        emit(**rec)


def write_ggufs():
    """A GGUF file of the saved model per GGML type the matrix names (CPU, numpy)."""
    warnings.filterwarnings("ignore")
    import torch
    from diffusers import FluxTransformer2DModel

    from quantdoctor.engines.gguf_loader import save_gguf

    os.makedirs(os.path.join(Ctx.work, "gguf"), exist_ok=True)
    torch.set_num_threads(4)
    model = FluxTransformer2DModel.from_pretrained(model_dir(), torch_dtype=torch.bfloat16)
    for scheme in schemes_of("gguf"):
        t = time.time()
        try:
            n = save_gguf(model, gguf_path(scheme) + ".part", scheme, arch="flux")
            os.replace(gguf_path(scheme) + ".part", gguf_path(scheme))
            emit(
                kind="gguf_write",
                scheme=scheme,
                quantized=n,
                s=round(time.time() - t, 2),
                mb=os.path.getsize(gguf_path(scheme)) / 2**20,
            )
        except Exception as exc:
            emit(kind="gguf_write", scheme=scheme, ok=False, **err_info(exc))
    with open(os.path.join(Ctx.work, "gguf", "done"), "w") as f:
        f.write("ok")


def write_sdnq():
    """An SDNQ-quantized copy of the saved model per scheme (pre mode, then save_pretrained)."""
    warnings.filterwarnings("ignore")
    import torch
    from diffusers import FluxTransformer2DModel

    from quantdoctor.rules.models import Plan

    os.makedirs(os.path.join(Ctx.work, "sdnq"), exist_ok=True)
    wanted = [s for s in os.environ.get("GT_SCHEMES", "").split(",") if s]
    for scheme in wanted or schemes_of("sdnq"):
        t = time.time()
        try:
            plan = Plan(engine="sdnq", scheme=scheme, mode="pre")
            model = FluxTransformer2DModel.from_pretrained(
                model_dir(), quantization_config=plan.to_diffusers(), torch_dtype=torch.bfloat16
            )
            model.save_pretrained(sdnq_dir(scheme))
            emit(kind="sdnq_write", scheme=scheme, s=round(time.time() - t, 2), ok=True)
        except Exception as exc:
            emit(kind="sdnq_write", scheme=scheme, ok=False, **err_info(exc))
    with open(os.path.join(Ctx.work, "sdnq", "done"), "w") as f:
        f.write("ok")


def warm_quanto():
    """Build quanto's CUDA extension (first use on a machine compiles it) off the clock."""
    warnings.filterwarnings("ignore")
    torch, dev = torch_device()
    if dev.type != "cuda":
        return
    import optimum.quanto as oq

    for qtype in (oq.qint4, oq.qfloat8_e4m3fn, oq.qint8):
        t = time.time()
        try:
            lin = torch.nn.Sequential(torch.nn.Linear(512, 512)).to(dev, torch.bfloat16)
            oq.quantize(lin, weights=qtype)
            oq.freeze(lin)
            lin(torch.randn(16, 512, device=dev, dtype=torch.bfloat16))
            torch.cuda.synchronize()
            emit(kind="quanto_warm", qtype=str(qtype), s=round(time.time() - t, 1), ok=True)
        except Exception as exc:
            emit(
                kind="quanto_warm",
                qtype=str(qtype),
                s=round(time.time() - t, 1),
                ok=False,
                **err_info(exc),
            )


def done_keys():
    done, started = set(), {}
    if os.path.exists(Ctx.log_path()):
        with open(Ctx.log_path()) as f:
            lines = f.readlines()
        for line in lines:
            d = json.loads(line)
            if d.get("kind") == "case":
                done.add(key(d))
            elif d.get("kind") == "case_start":
                started[key(d)] = d
    return done, started


def worker(job, cases):
    warnings.filterwarnings("ignore")
    torch, dev = torch_device()
    saved = torch.load(os.path.join(Ctx.work, "ref.pt"))
    ref = saved["ref"].to(dev)
    inp = {k: v.to(dev) for k, v in saved["inp"].items()}
    done, _ = done_keys()
    failed_load = {}
    for case in cases:
        if key(case) in done:
            continue
        plan_key = (case["engine"], case["scheme"], case["mode"])
        if plan_key in failed_load:  # loading does not depend on the offload: same error
            first = failed_load[plan_key]
            emit(
                kind="case",
                **case,
                ok=False,
                stage="load",
                same_as="offload=none",
                **{k: first.get(k) for k in ("error_type", "error", "last_frame", "lib_frame")},
            )
            continue
        if time.time() > Ctx.deadline - 5:
            emit(kind="case", **case, ok=None, skipped="deadline")
            continue
        if case["mode"] == "prequantized":
            wait_for_ggufs("sdnq" if case["engine"] == "sdnq" else "gguf")
        rec = run_case(case, torch, dev, inp, ref)
        if not rec["ok"] and rec.get("stage") == "load":
            failed_load[plan_key] = rec


def wait_for_ggufs(kind="gguf"):
    flag = os.path.join(Ctx.work, kind, "done")
    while not os.path.exists(flag) and time.time() < Ctx.deadline - 20:
        time.sleep(0.5)


# ------------------------------------------------------------------------------ driver


def verdicts(cases, env=None):
    """The matrix's verdict per case for ``env`` (probed here when ``None``)."""
    import quantdoctor
    from quantdoctor.rules.models import Plan

    t = time.perf_counter()
    if env is None:
        env = quantdoctor.probe()
    probe_ms = (time.perf_counter() - t) * 1e3
    out = {}
    for c in cases:
        v = quantdoctor.evaluate(Plan(**c), env)
        held = [
            f.rule
            for f in v.findings
            if (v.status == "blocked" and f.severity == "block" and f.state == "holds")
            or (v.status == "unknown" and f.state == "unknown")
            or (v.status == "warn" and f.severity == "warn")
        ]
        out[key(c)] = dict(status=v.status, rules=held)
    return env, probe_ms, out


def run_jobs(args, jobs):
    me = os.path.abspath(__file__)
    wlog = open(os.path.join(Ctx.out, "workers.log"), "a")  # noqa: SIM115 (children write to it)
    base_env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        GT_OUT=Ctx.out,
        GT_WORK=Ctx.work,
        GT_DEADLINE=str(Ctx.deadline),
        GT_OFFLOADS=",".join(Ctx.offloads),
        GT_SCHEMES=",".join(sorted(args.schemes)),
    )

    def child(argv, cap):
        wlog.write(f"\n===== {' '.join(argv)} at {time.time() - Ctx.t0:.1f}s\n")
        wlog.flush()
        try:
            r = subprocess.run(
                [sys.executable, me, *argv],
                env=base_env,
                stdout=wlog,
                stderr=subprocess.STDOUT,
                timeout=max(5.0, cap),
            )
            return r.returncode
        except subprocess.TimeoutExpired:
            return "timeout"

    rc = child(["prep"], 120)
    emit(kind="job_done", job="prep", rc=rc)
    background = []
    for engine, cmd in (("gguf", "write_ggufs"), ("sdnq", "write_sdnq"), ("quanto", "warm_quanto")):
        if engine in args.engines:
            background.append(
                subprocess.Popen(
                    [sys.executable, me, cmd], env=base_env, stdout=wlog, stderr=subprocess.STDOUT
                )
            )

    def run_one(job):
        name, cases = job
        tries, rc = 0, None
        while tries < 6:
            left = Ctx.deadline - time.time()
            if left < 10:
                break
            tries += 1
            payload = os.path.join(Ctx.work, f"job-{name}.json")
            with open(payload, "w") as f:
                json.dump(cases, f)
            rc = child(["worker", name, payload], min(left, args.job_cap))
            done, started = done_keys()
            lost = [c for k, c in started.items() if k not in done and k in {key(x) for x in cases}]
            for c in lost:  # the case the child was running when it died or ran out of time
                reason = "timeout" if rc == "timeout" else f"rc={rc}"
                emit(
                    kind="case",
                    **{k: c[k] for k in ("engine", "scheme", "mode", "offload")},
                    ok=False,
                    stage="crash",
                    error_type="ChildDied" if rc != "timeout" else "Timeout",
                    error=f"the child process died during this case ({reason}); see workers.log",
                )
            emit(kind="job_done", job=name, rc=rc, tries=tries)
            if rc == 0:
                break

    # lanes > 1 runs engines side by side on the GPU: outcomes hold, timings get noisier
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, args.lanes)) as pool:
        list(pool.map(run_one, jobs))
    for proc in background:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def read_records(paths):
    """Cases, bf16 baselines and setup from JSONL logs; a later run's result for a case
    replaces an earlier one, unless it did not run (deadline)."""
    records, baselines, setup = {}, {}, None
    for path in paths:
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                d.setdefault("run", os.path.basename(path))
                if d.get("kind") == "case" and (d.get("ok") is not None or key(d) not in records):
                    records[key(d)] = d
                elif d.get("kind") == "baseline" and d["offload"] not in baselines:
                    baselines[d["offload"]] = d
                elif d.get("kind") == "setup" and setup is None:
                    setup = d
    return records, baselines, setup


def summarize(cases, env, probe_ms, verdict, paths):
    records, baselines, setup = read_records(paths)
    rows = []
    for c in cases:
        r = records.get(key(c), dict(ok=None, skipped="not reached"))
        if r.get("error_type") == "Timeout":  # the job's time cap, not the engine: undetermined
            r = dict(r, ok=None, skipped=f"timeout ({r.get('run')}): outlasted the job's time cap")
        v = verdict[key(c)]
        base = baselines.get(c["offload"], {})
        row = dict(
            c,
            verdict=v["status"],
            verdict_rules=v["rules"],
            ok=r.get("ok"),
            stage=None if r.get("ok") else r.get("stage"),
            error_type=r.get("error_type"),
            error=r.get("error"),
            lib_frame=r.get("lib_frame"),
            same_as=r.get("same_as"),
            skipped=r.get("skipped"),
            rel_err=r.get("rel_err"),
            fwd_ms=r.get("fwd_ms"),
            peak_gb=r.get("peak_gb"),
            resident_gb=r.get("resident_gb"),
            load_s=r.get("load_s"),
            layers=r.get("layers"),
            run=r.get("run"),
        )
        if r.get("ok") and base.get("fwd_ms"):
            row["speed_vs_bf16"] = base["fwd_ms"] / r["fwd_ms"]
            if base.get("peak_gb"):
                row["peak_vs_bf16"] = r["peak_gb"] / base["peak_gb"]
        rows.append(row)
    ran = [r for r in rows if r["ok"] is not None]
    table = {s: {"ran": 0, "failed": 0} for s in ("ok", "warn", "unknown", "blocked")}
    for r in ran:
        table[r["verdict"]]["ran" if r["ok"] else "failed"] += 1
    agree = sum(
        1
        for r in ran
        if (r["verdict"] in ("ok", "warn")) == bool(r["ok"]) and r["verdict"] != "unknown"
    )
    disagreements = [
        r
        for r in ran
        if r["verdict"] == "unknown" or (r["verdict"] in ("ok", "warn")) != bool(r["ok"])
    ]
    crashed_ok = [r for r in ran if r["verdict"] in ("ok", "warn") and not r["ok"]]
    # cases refused by quantdoctor itself (InvalidInputError: no diffusers spelling, gguf-py
    # has no K-quant quantizer) agree with the matrix by construction: also count without them
    engine_ran = [r for r in ran if r.get("error_type") != "InvalidInputError"]
    engine_agree = sum(
        1
        for r in engine_ran
        if (r["verdict"] in ("ok", "warn")) == bool(r["ok"]) and r["verdict"] != "unknown"
    )
    return dict(
        setup=setup,
        env=env.to_json_dict(),
        probe_ms=probe_ms,
        baselines=baselines,
        total=len(rows),
        ran=len(ran),
        agree=agree,
        agreement=agree / len(ran) if ran else None,
        engine_ran=len(engine_ran),
        engine_agree=engine_agree,
        engine_agreement=engine_agree / len(engine_ran) if engine_ran else None,
        confusion=table,
        predicted_ok_but_failed=len(crashed_ok),
        disagreements=[
            {
                k: r[k]
                for k in (
                    "engine",
                    "scheme",
                    "mode",
                    "offload",
                    "verdict",
                    "verdict_rules",
                    "ok",
                    "stage",
                    "error_type",
                    "error",
                    "lib_frame",
                )
            }
            for r in disagreements
        ],
        cases=rows,
    )


def fmt(x, spec):
    return "–" if x is None else format(x, spec)


def markdown(s):
    setup = s["setup"] or {}
    env = s["env"]
    gpu = (env.get("gpus") or [{}])[0].get("name") if env.get("gpus") else None
    lines = [
        "# Ground truth: the matrix against real runs",
        "",
        f"Device: {setup.get('gpu') or setup.get('device')}; torch {setup.get('torch')}; "
        f"probed GPU: {gpu}; backend {env.get('backend')}.",
        f"Packages: {json.dumps(env.get('packages'))}",
        f"Model: FluxTransformer2DModel {json.dumps(setup.get('cfg'))}, "
        f"{setup.get('params')} params, "
        f"{N_IMG} image + {N_TXT} text tokens, bf16.",
        *s.get("notes", []),
        "",
        f"**Agreement: {s['agree']}/{s['ran']} = {fmt(s['agreement'], '.1%')}**; "
        f"plans the matrix calls ok or warn that failed: {s['predicted_ok_but_failed']}; "
        f"cases not run or undetermined: {s['total'] - s['ran']}.",
        f"Without the {s['ran'] - s['engine_ran']} cases quantdoctor itself refuses "
        f"(InvalidInputError): {s['engine_agree']}/{s['engine_ran']} = "
        f"{fmt(s['engine_agreement'], '.1%')}.",
        "",
        "## Confusion table (rows: the matrix's verdict; columns: what happened)",
        "",
        "| verdict | ran | failed |",
        "|---|---|---|",
    ]
    for status, c in s["confusion"].items():
        lines.append(f"| {status} | {c['ran']} | {c['failed']} |")
    lines += [
        "",
        "## Disagreements",
        "",
        "| engine | scheme | mode | offload | verdict | rules | reality | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in s["disagreements"]:
        real = "ran" if r["ok"] else f"failed@{r['stage']}"
        err = f"{r['error_type']}: {r['error']}" if r.get("error_type") else ""
        lines.append(
            f"| {r['engine']} | {r['scheme']} | {r['mode']} | {r['offload']} | {r['verdict']} | "
            f"{', '.join(r['verdict_rules'])} | {real} | {err[:160].replace('|', '/')} "
            f"({r.get('lib_frame') or ''}) |"
        )
    lines += ["", "## bf16 baselines", "", "| offload | fwd ms | peak GiB |", "|---|---|---|"]
    for off, b in s["baselines"].items():
        lines.append(f"| {off} | {fmt(b.get('fwd_ms'), '.1f')} | {fmt(b.get('peak_gb'), '.3f')} |")
    lines += [
        "",
        "## Every case",
        "",
        "| engine | scheme | mode | offload | verdict | reality | rel err | fwd ms "
        "| speed vs bf16 | peak GiB | run | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["cases"]:
        if r["ok"] is None:
            real = f"not run ({r.get('skipped')})"
        else:
            real = "ok" if r["ok"] else f"FAIL@{r['stage']}"
        err = (
            ""
            if r["ok"]
            else f"{r.get('error_type') or ''}: {(r.get('error') or '')[:90]}".strip(": ")
        )
        lines.append(
            f"| {r['engine']} | {r['scheme']} | {r['mode']} | {r['offload']} | {r['verdict']} | "
            f"{real} | {fmt(r.get('rel_err'), '.4f')} | {fmt(r.get('fwd_ms'), '.1f')} | "
            f"{fmt(r.get('speed_vs_bf16'), '.2f')} | {fmt(r.get('peak_gb'), '.3f')} | "
            f"{(r.get('run') or '').replace('ground_truth-', '').replace('.jsonl', '')} | "
            f"{err.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def driver(args):
    os.makedirs(Ctx.out, exist_ok=True)
    os.makedirs(Ctx.work, exist_ok=True)
    if os.path.exists(Ctx.log_path()):
        os.remove(Ctx.log_path())
    cases = all_cases(args.engines, Ctx.offloads, args.schemes, args.cases)
    env, probe_ms, verdict = verdicts(cases)
    emit(kind="env", env=env.to_json_dict())
    emit(kind="start", cases=len(cases), budget_s=args.budget, probe_ms=probe_ms)
    run_jobs(args, jobs_of(cases))
    write_summary(summarize(cases, env, probe_ms, verdict, [Ctx.log_path()]))


def write_summary(s):
    with open(os.path.join(Ctx.out, "ground_truth.json"), "w") as f:
        json.dump(s, f, indent=1, default=str)
    md = markdown(s)
    with open(os.path.join(Ctx.out, "ground_truth.md"), "w") as f:
        f.write(md)
    print(md.split("## bf16 baselines")[0])


def report(args):
    """Re-judge recorded runs with today's matrix: no GPU, no torch (the env comes from
    the logs' ``env`` record or ``--env``)."""
    from quantdoctor.rules.models import Environment

    env_data = None
    if args.env:
        with open(args.env) as f:
            env_data = json.load(f)
    for path in args.logs:
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                if d.get("kind") == "env" and env_data is None:
                    env_data = d["env"]
    if env_data is None:
        sys.exit("report: no env record in the logs; pass --env FILE (the probed Environment JSON)")
    env = Environment.model_validate(env_data)
    cases = all_cases(args.engines, Ctx.offloads, args.schemes, args.cases)
    _, _, verdict = verdicts(cases, env)
    os.makedirs(Ctx.out, exist_ok=True)
    s = summarize(cases, env, None, verdict, args.logs)
    s["notes"] = args.note
    write_summary(s)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "cmd",
        nargs="?",
        default="all",
        choices=["all", "prep", "write_ggufs", "write_sdnq", "warm_quanto", "worker", "report"],
    )
    p.add_argument("job", nargs="?")
    p.add_argument("payload", nargs="?")
    p.add_argument("--budget", type=float, default=float(os.environ.get("GT_BUDGET_S", "420")))
    p.add_argument("--job-cap", type=float, default=180.0)
    p.add_argument("--lanes", type=int, default=1, help="children run side by side")
    p.add_argument(
        "--out", default=os.environ.get("GT_OUT") or os.environ.get("OUT") or "/tmp/gt_out"
    )
    p.add_argument("--work", default=os.environ.get("GT_WORK", "/tmp/gt_work"))
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--offloads", default=os.environ.get("GT_OFFLOADS", ",".join(OFFLOADS)))
    p.add_argument("--schemes", default="")
    p.add_argument("--cases", default="", help="engine[:mode[:scheme[:offload]]],... (* for any)")
    p.add_argument("--logs", nargs="*", default=[], help="report: JSONL logs, oldest first")
    p.add_argument("--env", default="", help="report: the probed Environment JSON")
    p.add_argument("--note", action="append", default=[], help="report: a line for the header")
    args = p.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    args.engines = [e for e in args.engines.split(",") if e]
    args.schemes = {s for s in args.schemes.split(",") if s}
    Ctx.out, Ctx.work = args.out, args.work
    Ctx.offloads = tuple(o for o in args.offloads.split(",") if o)
    if args.cmd == "all":
        Ctx.deadline = time.time() + args.budget
        driver(args)
        return
    if args.cmd == "report":
        report(args)
        return
    Ctx.deadline = float(os.environ.get("GT_DEADLINE", time.time() + args.budget))
    if args.cmd == "prep":
        prep()
    elif args.cmd == "write_ggufs":
        write_ggufs()
    elif args.cmd == "write_sdnq":
        write_sdnq()
    elif args.cmd == "warm_quanto":
        warm_quanto()
    else:
        with open(args.payload) as f:
            worker(args.job, json.load(f))


if __name__ == "__main__":
    main()
