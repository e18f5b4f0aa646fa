"""Ground truth through diffusers, the way inference apps load and offload a quantized transformer.

A tiny-but-real FluxTransformer2DModel (inner width 1024, 2 double + 4 single blocks, built from config, no
downloads) is saved with save_pretrained, then loaded with each engine's diffusers config ("pre": quantize while
loading) or loaded in bf16 and quantized in place ("post"), and run under each offload mode:

  none          model.to('cuda')
  model         DiffusionPipeline.enable_model_cpu_offload()      (accelerate cpu_offload_with_hook)
  sequential    DiffusionPipeline.enable_sequential_cpu_offload() (accelerate cpu_offload)
  group_block   model.enable_group_offload(block_level, num_blocks_per_group=1)
  group_leaf    model.enable_group_offload(leaf_level)
  balanced      SD.Next-style balanced offload: accelerate.dispatch_model(force_hooks=True) with the device map
                from infer_auto_device_map; everything fits on the GPU
  balanced_split the same with a GPU budget of 40% of the bf16 model, so some blocks are CPU-offloaded

GGUF files (Q8_0 from gguf-py, Q4_K from a numpy quantizer checked against gguf-py's dequantizer) are written
with gguf.GGUFWriter in diffusers' key layout and, separately, in the original BFL Flux layout that
from_single_file converts.  Also times GPU probes that need no torch.

usage:  python gpu_diffusers.py all          (driver: probes, then one subprocess per engine)
        python gpu_diffusers.py worker ENGINE
Writes JSON lines to $OUT/diffusers.jsonl.
"""
import ctypes, glob, json, os, statistics, subprocess, sys, time, traceback, warnings

warnings.filterwarnings("ignore")
OUT = os.environ.get("OUT", "/tmp/gd_out")
os.makedirs(OUT, exist_ok=True)
LOGP = os.path.join(OUT, "diffusers.jsonl")
WD = os.environ.get("GD_WORK", "/tmp/gd")
os.makedirs(WD, exist_ok=True)
MODEL_DIR = os.path.join(WD, "flux_tiny")
M3072_DIR = os.path.join(WD, "flux_3072")
NIMG = int(os.environ.get("GD_NIMG", "1024"))
NTXT = int(os.environ.get("GD_NTXT", "256"))
DEADLINE = float(os.environ.get("GD_DEADLINE", time.time() + 3600))
T0 = time.time()

OFFLOADS = ["none", "model", "sequential", "group_block", "group_leaf", "balanced", "balanced_split"]
POST_OFFLOADS = ["none", "model", "sequential", "group_block", "balanced"]

CFG = dict(patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=128,
           num_attention_heads=8, joint_attention_dim=1024, pooled_projection_dim=768, guidance_embeds=True,
           axes_dims_rope=(16, 56, 56))
# inner width 3072 is what diffusers' BFL->diffusers Flux conversion hard-codes; used for the realistic GGUF path
CFG3072 = dict(CFG, num_layers=1, num_single_layers=1, num_attention_heads=24, joint_attention_dim=512,
               pooled_projection_dim=256)


def emit(**kw):
    kw.setdefault("t", round(time.time() - T0, 2))
    line = json.dumps(kw, default=str)
    with open(LOGP, "a") as f:
        f.write(line + "\n")
    print(line[:600], flush=True)


def err_info(e):
    tb = traceback.extract_tb(e.__traceback__)
    last = tb[-1] if tb else None
    # deepest frame inside a library we care about, for orientation
    lib = next((f for f in reversed(tb) if any(k in f.filename for k in
                ("diffusers", "accelerate", "bitsandbytes", "optimum", "torchao", "nncf", "gguf"))), None)
    return dict(error_type=type(e).__name__, error=str(e)[:400],
                last_frame=f"{last.filename}:{last.lineno} in {last.name}" if last else None,
                lib_frame=f"{lib.filename}:{lib.lineno} in {lib.name}" if lib else None)


# ----------------------------------------------------------------------------------------------------------------
# 1. probes without torch (run in the driver, which never imports torch)
# ----------------------------------------------------------------------------------------------------------------
NVML_SNIPPET = r'''
import ctypes, json, time
t = time.perf_counter()
lib = ctypes.CDLL("libnvidia-ml.so.1")
assert lib.nvmlInit_v2() == 0
h = ctypes.c_void_p(); lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(h))
ma, mi = ctypes.c_int(), ctypes.c_int(); lib.nvmlDeviceGetCudaComputeCapability(h, ctypes.byref(ma), ctypes.byref(mi))
name = ctypes.create_string_buffer(96); lib.nvmlDeviceGetName(h, name, 96)
drv = ctypes.create_string_buffer(80); lib.nvmlSystemGetDriverVersion(drv, 80)
class M(ctypes.Structure): _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]
m = M(); lib.nvmlDeviceGetMemoryInfo(h, ctypes.byref(m))
cv = ctypes.c_int(); lib.nvmlSystemGetCudaDriverVersion_v2(ctypes.byref(cv))
ms = (time.perf_counter() - t) * 1e3
print(json.dumps(dict(ms=ms, cc=f"{ma.value}.{mi.value}", name=name.value.decode(), driver=drv.value.decode(),
                      mem_total=m.total, mem_used=m.used, cuda_driver=cv.value)), flush=True)
'''


def nvml_inproc():
    t = time.perf_counter()
    lib = ctypes.CDLL("libnvidia-ml.so.1")
    assert lib.nvmlInit_v2() == 0
    h = ctypes.c_void_p(); lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(h))
    ma, mi = ctypes.c_int(), ctypes.c_int()
    lib.nvmlDeviceGetCudaComputeCapability(h, ctypes.byref(ma), ctypes.byref(mi))
    name = ctypes.create_string_buffer(96); lib.nvmlDeviceGetName(h, name, 96)
    drv = ctypes.create_string_buffer(80); lib.nvmlSystemGetDriverVersion(drv, 80)

    class M(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]
    m = M(); lib.nvmlDeviceGetMemoryInfo(h, ctypes.byref(m))
    ms = (time.perf_counter() - t) * 1e3
    lib.nvmlShutdown()
    return ms, dict(cc=f"{ma.value}.{mi.value}", name=name.value.decode(), driver=drv.value.decode(),
                    mem_total=m.total, mem_used=m.used)


def run_ms(cmd, n=5, shell=False):
    ts, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, shell=shell)
        ts.append((time.perf_counter() - t) * 1e3)
        out = (r.stdout.strip() or r.stderr.strip())[:400]
    return dict(median_ms=statistics.median(ts), all_ms=[round(x, 1) for x in ts], out=out, rc=r.returncode)


def smi(q):
    r = subprocess.run(["nvidia-smi", q, "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


def ctx_check(label, code):
    """Start a process that probes, then sleeps; look at nvidia-smi while it is alive."""
    before_apps = smi("--query-compute-apps=pid,process_name,used_memory")
    before_mem = smi("--query-gpu=memory.used")
    p = subprocess.Popen([sys.executable, "-c", code + "\nimport sys,time\nprint('READY', flush=True)\ntime.sleep(20)"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = ""
    t = time.time()
    while time.time() - t < 60:
        line = p.stdout.readline()
        if "READY" in line or not line:
            break
    time.sleep(0.5)
    during_apps = smi("--query-compute-apps=pid,process_name,used_memory")
    during_mem = smi("--query-gpu=memory.used")
    p.kill(); p.wait()
    time.sleep(0.5)
    emit(kind="probe_ctx", probe=label, pid=p.pid, before_apps=before_apps, during_apps=during_apps,
         before_mem=before_mem, during_mem=during_mem, process_listed=str(p.pid) in during_apps)


def _safe(label, fn):
    try:
        fn()
    except Exception as e:
        emit(kind="probe", method=label, ok=False, **err_info(e))


def probes():
    py = sys.executable

    def inproc():
        ins, info = [], None
        for _ in range(5):
            ms, info = nvml_inproc(); ins.append(ms)
        emit(kind="probe", method="nvml-ctypes-inprocess", median_ms=statistics.median(ins),
             all_ms=[round(x, 2) for x in ins], **info)

    def procread():
        ts, txt = [], ""
        for _ in range(5):
            t = time.perf_counter()
            txt = "".join(open(f).read() for f in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")))
            ts.append((time.perf_counter() - t) * 1e3)
        ver = open("/proc/driver/nvidia/version").read() if os.path.exists("/proc/driver/nvidia/version") else None
        emit(kind="probe", method="proc-driver-nvidia-read", median_ms=statistics.median(ts),
             all_ms=[round(x, 3) for x in ts], out=txt[:600], version_file=(ver or "")[:300], found=bool(txt))
    _safe("nvml-ctypes-inprocess", inproc)
    _safe("nvml-ctypes-process", lambda: emit(kind="probe", method="nvml-ctypes-process", **run_ms([py, "-c", NVML_SNIPPET])))
    _safe("nvidia-smi-query-gpu", lambda: emit(kind="probe", method="nvidia-smi-query-gpu", **run_ms(
        ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version,memory.total,memory.used", "--format=csv,noheader"])))
    _safe("proc-driver-nvidia-read", procread)
    _safe("proc-driver-nvidia-cat-process", lambda: emit(kind="probe", method="proc-driver-nvidia-cat-process",
                                                          **run_ms("cat /proc/driver/nvidia/gpus/*/information", shell=True)))
    _safe("python-startup-only", lambda: emit(kind="probe", method="python-startup-only", **run_ms([py, "-c", "pass"])))
    _safe("torch-capability-process", lambda: emit(kind="probe", method="torch-capability-process", **run_ms(
        [py, "-c", "import torch; print(torch.cuda.get_device_capability())"])))
    _safe("torch-import-only-process", lambda: emit(kind="probe", method="torch-import-only-process",
                                                     **run_ms([py, "-c", "import torch"], n=3)))
    _safe("ctx-nvml", lambda: ctx_check("nvml-ctypes", NVML_SNIPPET))
    _safe("ctx-torch-cap", lambda: ctx_check("torch-get_device_capability",
                                             "import torch; print(torch.cuda.get_device_capability())"))
    _safe("ctx-torch-alloc", lambda: ctx_check("torch-alloc-control",
                                               "import torch; x = torch.zeros(1, device='cuda'); torch.cuda.synchronize()"))


# ----------------------------------------------------------------------------------------------------------------
# 2. GGUF writing (CPU only; numpy)
# ----------------------------------------------------------------------------------------------------------------
def q4k_quantize(w):
    """Q4_K (256-value super-blocks, 8 sub-blocks of 32, 6-bit scales and mins) by plain min/max per sub-block."""
    import numpy as np
    rows, cols = w.shape
    x = w.astype(np.float32).reshape(-1, 8, 32)
    nb = x.shape[0]
    mn = np.minimum(x.min(-1), 0.0)
    mx = np.maximum(x.max(-1), mn + 1e-12)
    scale = (mx - mn) / 15.0
    d16 = (scale.max(-1) / 63.0).astype(np.float16)
    dm16 = ((-mn).max(-1) / 63.0).astype(np.float16)
    df, dmf = d16.astype(np.float32)[:, None], dm16.astype(np.float32)[:, None]
    sc = np.clip(np.ceil(np.divide(scale, df, out=np.zeros_like(scale), where=df > 0)), 0, 63).astype(np.uint8)
    m = np.clip(np.ceil(np.divide(-mn, dmf, out=np.zeros_like(mn), where=dmf > 0)), 0, 63).astype(np.uint8)
    es = (df * sc)[..., None]
    em = (dmf * m)[..., None]
    q = np.clip(np.rint(np.divide(x + em, es, out=np.zeros_like(x), where=es > 0)), 0, 15).astype(np.uint8)
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(nb, 128)
    s = np.zeros((nb, 12), np.uint8)
    s[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] & 0x30) << 2)
    s[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] & 0x30) << 2)
    s[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    out = np.concatenate([d16.view(np.uint8).reshape(nb, 2), dm16.view(np.uint8).reshape(nb, 2), s, qs], axis=1)
    return out.reshape(rows, cols // 256 * 144)


def to_bfl(sd, n_double, n_single):
    """Inverse of diffusers' convert_flux_transformer_checkpoint_to_diffusers (original BFL Flux key layout)."""
    import torch

    class Rec(dict):
        used = set()

        def __getitem__(self, k):
            Rec.used.add(k)
            return dict.__getitem__(self, k)
    sd = Rec(sd)
    o = {}
    pairs = {"time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
             "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
             "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
             "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
             "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
             "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
             "context_embedder": "txt_in", "x_embedder": "img_in", "proj_out": "final_layer.linear"}
    for a, b in pairs.items():
        for s in ("weight", "bias"):
            o[f"{b}.{s}"] = sd[f"{a}.{s}"]
    sh = lambda t: torch.cat(list(t.chunk(2, 0))[::-1], 0)  # diffusers (scale, shift) -> BFL (shift, scale)
    o["final_layer.adaLN_modulation.1.weight"] = sh(sd["norm_out.linear.weight"])
    o["final_layer.adaLN_modulation.1.bias"] = sh(sd["norm_out.linear.bias"])
    for i in range(n_double):
        p, q = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        m = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "ff.net.0.proj": "img_mlp.0",
             "ff.net.2": "img_mlp.2", "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2",
             "attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj"}
        for a, b in m.items():
            for s in ("weight", "bias"):
                o[q + b + "." + s] = sd[p + a + "." + s]
        for s in ("weight", "bias"):
            o[q + f"img_attn.qkv.{s}"] = torch.cat([sd[p + f"attn.to_{x}.{s}"] for x in "qkv"], 0)
            o[q + f"txt_attn.qkv.{s}"] = torch.cat([sd[p + f"attn.add_{x}_proj.{s}"] for x in "qkv"], 0)
        o[q + "img_attn.norm.query_norm.scale"] = sd[p + "attn.norm_q.weight"]
        o[q + "img_attn.norm.key_norm.scale"] = sd[p + "attn.norm_k.weight"]
        o[q + "txt_attn.norm.query_norm.scale"] = sd[p + "attn.norm_added_q.weight"]
        o[q + "txt_attn.norm.key_norm.scale"] = sd[p + "attn.norm_added_k.weight"]
    for i in range(n_single):
        p, q = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for s in ("weight", "bias"):
            o[q + f"modulation.lin.{s}"] = sd[p + f"norm.linear.{s}"]
            o[q + f"linear1.{s}"] = torch.cat([sd[p + f"attn.to_{x}.{s}"] for x in "qkv"] + [sd[p + f"proj_mlp.{s}"]], 0)
            o[q + f"linear2.{s}"] = sd[p + f"proj_out.{s}"]
        o[q + "norm.query_norm.scale"] = sd[p + "attn.norm_q.weight"]
        o[q + "norm.key_norm.scale"] = sd[p + "attn.norm_k.weight"]
    assert Rec.used == set(sd.keys()), sorted(set(sd.keys()) - Rec.used)[:5]
    return o


def write_gguf(sd, path, qname):
    """sd: name -> torch tensor (bf16).  2-D weights whose width fits the block are quantized; rest F32/F16."""
    import gguf, numpy as np
    qt = gguf.GGMLQuantizationType[qname]
    block = 256 if qname.endswith("_K") else 32
    w = gguf.GGUFWriter(path, "flux")
    nq = 0
    for k, t in sd.items():
        a = t.float().numpy()
        if a.ndim == 2 and a.shape[1] % block == 0 and k.endswith("weight"):
            data = q4k_quantize(a) if qname == "Q4_K" else gguf.quants.quantize(a, qt)
            w.add_tensor(k, data, raw_dtype=qt); nq += 1
        elif a.ndim == 2:
            w.add_tensor(k, a.astype(np.float16))
        else:
            w.add_tensor(k, a.astype(np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return nq


def gguf_writer_main():
    """Background CPU job: GGUF files of the tiny model (diffusers layout and BFL layout), and of a 3072-wide model."""
    import torch, numpy as np, gguf
    from safetensors.torch import load_file
    torch.set_num_threads(4)
    sd = load_file(os.path.join(MODEL_DIR, "diffusion_pytorch_model.safetensors"))
    # check the Q4_K packer against gguf-py's own dequantizer first
    a = sd["transformer_blocks.0.ff.net.0.proj.weight"].float().numpy()
    deq = gguf.quants.dequantize(q4k_quantize(a), gguf.GGMLQuantizationType.Q4_K).reshape(a.shape)
    emit(kind="gguf_q4k_selfcheck", rel_err=float(np.linalg.norm(deq - a) / np.linalg.norm(a)))
    for q in ("Q8_0", "Q4_K"):
        t = time.time()
        n = write_gguf(sd, os.path.join(WD, f"tiny_diffusers_{q}.gguf"), q)
        emit(kind="gguf_write", layout="diffusers", qtype=q, quantized_tensors=n, s=time.time() - t,
             mb=os.path.getsize(os.path.join(WD, f"tiny_diffusers_{q}.gguf")) / 2**20)
    t = time.time()
    n = write_gguf(to_bfl(dict(sd), CFG["num_layers"], CFG["num_single_layers"]), os.path.join(WD, "tiny_bfl_Q8_0.gguf"), "Q8_0")
    emit(kind="gguf_write", layout="bfl", qtype="Q8_0", quantized_tensors=n, s=time.time() - t)
    # realistic BFL-layout file at Flux's real inner width (3072), 1 double + 1 single block
    from diffusers import FluxTransformer2DModel
    torch.manual_seed(1)
    m = FluxTransformer2DModel(**CFG3072).to(torch.bfloat16)
    m.save_pretrained(M3072_DIR)
    sd3 = {k: v.detach().cpu() for k, v in m.state_dict().items()}
    del m
    t = time.time()
    n = write_gguf(to_bfl(sd3, 1, 1), os.path.join(WD, "f3072_bfl_Q8_0.gguf"), "Q8_0")
    emit(kind="gguf_write", layout="bfl", model="flux_3072", qtype="Q8_0", quantized_tensors=n, s=time.time() - t,
         params=sum(v.numel() for v in sd3.values()))
    open(os.path.join(WD, "gguf.done"), "w").write("ok")


# ----------------------------------------------------------------------------------------------------------------
# 3. torch side
# ----------------------------------------------------------------------------------------------------------------
def torch_side():
    import torch
    g = {}
    g["torch"] = torch
    g["DEV"] = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return g


def make_inputs(torch, dev, cfg=CFG, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)
    side = int(NIMG ** 0.5)
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    d = dict(hidden_states=r(1, NIMG, cfg["in_channels"]), encoder_hidden_states=r(1, NTXT, cfg["joint_attention_dim"]),
             pooled_projections=r(1, cfg["pooled_projection_dim"]), timestep=torch.tensor([0.5]),
             img_ids=img_ids.reshape(-1, 3), txt_ids=torch.zeros(NTXT, 3), guidance=torch.tensor([3.5]))
    return {k: v.to(dev, torch.bfloat16 if v.is_floating_point() and k not in ("img_ids", "txt_ids") else v.dtype)
            for k, v in d.items()}


def fwd(model, inp):
    import torch
    with torch.no_grad():
        return model(**inp, return_dict=False)[0]


class _Pipe:
    cls = None


def tiny_pipe(transformer):
    if _Pipe.cls is None:
        from diffusers import DiffusionPipeline

        class TinyPipe(DiffusionPipeline):
            model_cpu_offload_seq = "transformer"

            def __init__(self, transformer):
                super().__init__()
                self.register_modules(transformer=transformer)
        _Pipe.cls = TinyPipe
    return _Pipe.cls(transformer=transformer)


def bf16_bytes(cfgdir=MODEL_DIR):
    return os.path.getsize(os.path.join(cfgdir, "diffusion_pytorch_model.safetensors"))


def apply_offload(model, mode, torch, dev):
    """Returns (callable_module, keepalive)."""
    if mode == "none":
        return model.to(dev), None
    if mode in ("model", "sequential"):
        pipe = tiny_pipe(model)
        if mode == "model":
            pipe.enable_model_cpu_offload(device=dev)
        else:
            pipe.enable_sequential_cpu_offload(device=dev)
        return pipe.transformer, pipe
    if mode == "group_block":
        model.enable_group_offload(onload_device=dev, offload_type="block_level", num_blocks_per_group=1)
        return model, None
    if mode == "group_leaf":
        model.enable_group_offload(onload_device=dev, offload_type="leaf_level")
        return model, None
    if mode in ("balanced", "balanced_split"):
        import accelerate
        budget = 64 * 2**30 if mode == "balanced" else int(0.4 * bf16_bytes())
        dm = accelerate.infer_auto_device_map(model, max_memory={0: budget, "cpu": 100 * 2**30},
                                              no_split_module_classes=list(getattr(model, "_no_split_modules", None) or []),
                                              clean_result=False)
        model.balanced_device_map = dm
        m = accelerate.dispatch_model(model, main_device=dev, device_map=dm, offload_dir=os.path.join(WD, "offload"),
                                      force_hooks=True)
        return m, dm
    raise ValueError(mode)


# ---- quantization configs ("pre") and in-place quantizers ("post") ----
def pre_configs(engine):
    import torch
    if engine == "bf16":
        return [("bf16", lambda: None)]
    if engine == "bitsandbytes":
        from diffusers import BitsAndBytesConfig as B
        want = os.environ.get("GD_BNB_SCHEMES", "nf4,fp4,int8").split(",")
        return [x for x in [("nf4", lambda: B(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)),
                ("fp4", lambda: B(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.bfloat16)),
                ("int8", lambda: B(load_in_8bit=True))] if x[0] in want]
    if engine in ("quanto", "quanto_f8"):
        from diffusers import QuantoConfig as Q
        ss = os.environ.get("GD_QUANTO_SCHEMES", "int8,int4").split(",") if engine == "quanto" else ["float8"]
        return [(s, (lambda s=s: Q(weights_dtype=s))) for s in ss]
    if engine == "torchao":
        from diffusers import TorchAoConfig as T
        import torchao.quantization as tq
        return [("int8wo", lambda: T(tq.Int8WeightOnlyConfig())),
                ("int8dq", lambda: T(tq.Int8DynamicActivationInt8WeightConfig())),
                ("float8wo", lambda: T(tq.Float8WeightOnlyConfig())),
                ("float8dq", lambda: T(tq.Float8DynamicActivationFloat8WeightConfig())),
                ("int4wo", lambda: T(tq.Int4WeightOnlyConfig())),
                ("int4wo_tile", lambda: T(tq.Int4WeightOnlyConfig(int4_packing_format="tile_packed_to_4d")))]
    raise ValueError(engine)


def load_pre(engine, scheme, cfgfn, torch, device_map=None):
    from diffusers import FluxTransformer2DModel
    if engine == "gguf":
        from diffusers import GGUFQuantizationConfig
        return FluxTransformer2DModel.from_single_file(
            cfgfn, config=MODEL_DIR if "3072" not in cfgfn else M3072_DIR,
            quantization_config=GGUFQuantizationConfig(compute_dtype=torch.bfloat16), torch_dtype=torch.bfloat16)
    kw = dict(torch_dtype=torch.bfloat16)
    q = cfgfn()
    if q is not None:
        kw["quantization_config"] = q
    if device_map:
        kw["device_map"] = device_map
    return FluxTransformer2DModel.from_pretrained(MODEL_DIR, **kw)


def post_quantize(engine, scheme, model, torch, dev, inp):
    if engine == "bitsandbytes":
        import bitsandbytes as bnb
        for name, mod in list(model.named_modules()):
            for cn, c in list(mod.named_children()):
                if type(c) is torch.nn.Linear:
                    b = c.bias is not None
                    if scheme == "int8":
                        n = bnb.nn.Linear8bitLt(c.in_features, c.out_features, bias=b, has_fp16_weights=False, threshold=6.0)
                        n.weight = bnb.nn.Int8Params(c.weight.data.cpu(), requires_grad=False, has_fp16_weights=False)
                    else:
                        n = bnb.nn.Linear4bit(c.in_features, c.out_features, bias=b, compute_dtype=torch.bfloat16, quant_type=scheme)
                        n.weight = bnb.nn.Params4bit(c.weight.data.cpu(), requires_grad=False, quant_type=scheme)
                    if b:
                        n.bias = torch.nn.Parameter(c.bias.data.cpu(), requires_grad=False)
                    setattr(mod, cn, n)
        return model.to(dev)  # bnb quantizes on the move to the GPU
    if engine == "quanto":
        import optimum.quanto as oq
        oq.quantize(model, weights=getattr(oq, scheme)); oq.freeze(model)
        return model  # quantized on the CPU, where the bf16 load left it
    if engine == "torchao":
        import torchao.quantization as tq
        cfg = {"int8wo": tq.Int8WeightOnlyConfig, "float8wo": tq.Float8WeightOnlyConfig,
               "int8dq": tq.Int8DynamicActivationInt8WeightConfig}[scheme]()
        model = model.to(dev)
        tq.quantize_(model, cfg)
        return model
    if engine == "nncf":
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode
        model = model.to(dev)
        kw = {}
        if scheme.endswith("+ignore"):  # x_embedder is 64 wide: no 128-group fits, so leave such layers alone
            scheme = scheme.split("+")[0]
            kw["advanced_parameters"] = AdvancedCompressionParameters(group_size_fallback_mode=GroupSizeFallbackMode.IGNORE)
        return nncf.compress_weights(model, mode=getattr(nncf.CompressWeightsMode, scheme), dataset=nncf.Dataset([inp]), **kw)
    raise ValueError(engine)


def measure(torch, dev, m, inp, ref, n=5):
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    y = fwd(m, inp); sync()  # warm-up
    ts = []
    for _ in range(n):
        t = time.perf_counter(); y = fwd(m, inp); sync(); ts.append((time.perf_counter() - t) * 1e3)
    rel = ((y.float().to(ref.device) - ref.float()).norm() / ref.float().norm()).item()
    r = dict(fwd_ms=statistics.median(ts), rel_err=rel, finite=bool(torch.isfinite(y).all()), out_device=str(y.device))
    if dev.type == "cuda":
        r["fwd_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return r


def count_q(model):
    from collections import Counter
    c = Counter(type(mm).__name__ for mm in model.modules() if "Linear" in type(mm).__name__)
    w = Counter(type(p).__name__ for p in model.parameters())
    d = Counter(str(p.dtype).replace("torch.", "") for p in model.parameters())
    return dict(linear_types=dict(c), param_types=dict(w), param_dtypes=dict(d))


KEYF = ("engine", "scheme", "mode", "offload", "load_variant", "model", "layout")
DONE = set()


def case_key(d):
    return tuple(str(d.get(k)) for k in KEYF)


def resume_state(rc_hint):
    """A worker restarted after its process died: cases already recorded are skipped; a case that was started and
    never recorded is what killed the process, and is recorded as such."""
    if not os.path.exists(LOGP):
        return
    started = {}
    for line in open(LOGP):
        try:
            d = json.loads(line)
        except Exception:
            continue
        if d.get("kind") == "case":
            DONE.add(case_key(d))
        elif d.get("kind") == "case_start":
            started[case_key(d)] = d
    for k, d in started.items():
        if k not in DONE:
            rec = {kk: v for kk, v in d.items() if kk not in ("kind", "t")}
            emit(kind="case", ok=False, stage="crash", error_type="WorkerDied",
                 error=f"the worker process died during this case (rc={rc_hint}); the traceback is in workers.log",
                 **rec)
            DONE.add(k)


def one_case(G, engine, scheme, mode, offload, loader, ref, inp, extra=None):
    torch, dev = G["torch"], G["DEV"]
    import gc
    rec = dict(kind="case", engine=engine, scheme=scheme, mode=mode, offload=offload, **(extra or {}))
    if case_key(rec) in DONE:
        return dict(rec, ok=None, skipped="done before restart")
    emit(**dict(rec, kind="case_start"))
    stage = "load"
    model = m = keep = None
    try:
        if dev.type == "cuda":
            torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t = time.perf_counter()
        model = loader()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rec["load_s"] = time.perf_counter() - t
        try:
            rec["model_device_after_load"] = str(next(model.parameters()).device)
            rec.update(count_q(model))
        except Exception:
            pass
        stage = "offload_setup"
        t = time.perf_counter()
        m, keep = apply_offload(model, offload, torch, dev)
        rec["setup_s"] = time.perf_counter() - t
        if isinstance(keep, dict):
            rec["device_map_devices"] = sorted({str(v) for v in keep.values()})
        if dev.type == "cuda":
            torch.cuda.synchronize()
            rec["resident_gb"] = (torch.cuda.memory_allocated() - base) / 2**30
            rec["load_peak_gb"] = (torch.cuda.max_memory_allocated() - base) / 2**30
        stage = "forward"
        rec.update(measure(torch, dev, m, inp, ref))
        if dev.type == "cuda":
            rec["fwd_peak_gb"] -= base / 2**30
        rec["ok"] = True
    except Exception as e:
        rec.update(ok=False, stage=stage, **err_info(e))
    finally:
        del model, m, keep
        gc.collect()
        lost = None
        if dev.type == "cuda":
            try:
                torch.cuda.synchronize(); torch.cuda.empty_cache()
            except Exception as e2:  # the CUDA context is gone (illegal address etc.): record, and let the driver restart us
                lost = e2
    if lost is not None:
        rec.update(cuda_context_lost=True, cleanup_error=f"{type(lost).__name__}: {str(lost)[:300]}")
        if rec.get("ok"):
            rec.update(ok=False, stage="after_forward")
        emit(**rec)
        os._exit(3)
    emit(**rec)
    return rec


def gguf3072(G, left):
    """A BFL-layout GGUF at Flux's real inner width, the kind of file people download, through from_single_file."""
    torch, dev = G["torch"], G["DEV"]
    p = os.path.join(WD, "f3072_bfl_Q8_0.gguf")
    if not os.path.exists(p):
        emit(kind="case", engine="gguf", scheme="Q8_0", mode="prequantized", model="flux_3072", ok=None, skipped="file missing")
        return
    from diffusers import FluxTransformer2DModel
    inp3 = make_inputs(torch, dev, CFG3072, seed=1)
    m3 = FluxTransformer2DModel.from_pretrained(M3072_DIR, torch_dtype=torch.bfloat16).to(dev)
    ref3 = fwd(m3, inp3).detach()
    del m3
    for off in ("none", "model"):
        one_case(G, "bf16", "bf16", "bf16", off, lambda: FluxTransformer2DModel.from_pretrained(M3072_DIR, torch_dtype=torch.bfloat16),
                 ref3, inp3, extra=dict(model="flux_3072"))
    for off in ("none", "model", "sequential", "group_block", "balanced"):
        if left() < 8:
            break
        one_case(G, "gguf", "Q8_0", "prequantized", off, lambda: load_pre("gguf", "Q8_0", p, torch), ref3, inp3,
                 extra=dict(layout="bfl", model="flux_3072"))


def worker(engine):
    G = torch_side()
    torch, dev = G["torch"], G["DEV"]
    import diffusers, importlib.metadata as md
    offloads = OFFLOADS if dev.type == "cuda" else ["none"]
    ref_path = os.path.join(WD, "ref.pt")
    resume_state(os.environ.get("GD_PREV_RC"))
    if engine in ("bf16", "prep") and not os.path.exists(ref_path):
        from diffusers import FluxTransformer2DModel
        t = time.perf_counter()
        torch.manual_seed(0)
        mm = FluxTransformer2DModel(**CFG).to(torch.bfloat16)
        mm.save_pretrained(MODEL_DIR)
        n = sum(p.numel() for p in mm.parameters())
        del mm
        inp = make_inputs(torch, dev)
        ref_m = FluxTransformer2DModel.from_pretrained(MODEL_DIR, torch_dtype=torch.bfloat16).to(dev)
        ref = fwd(ref_m, inp).detach()
        del ref_m
        torch.save(dict(ref=ref.cpu(), inp={k: v.cpu() for k, v in inp.items()}), ref_path)
        vers = {}
        for p in ("torch", "diffusers", "accelerate", "transformers", "bitsandbytes", "optimum-quanto", "torchao",
                  "gguf", "nncf", "triton", "safetensors", "huggingface-hub", "numpy"):
            try:
                vers[p] = md.version(p)
            except Exception as e:
                vers[p] = None
        emit(kind="setup", params=n, bf16_mb=bf16_bytes() / 2**20, cfg=CFG, nimg=NIMG, ntxt=NTXT,
             build_s=time.perf_counter() - t, device=str(dev),
             gpu=torch.cuda.get_device_name(0) if dev.type == "cuda" else None, versions=vers)
    if engine == "prep":
        return
    saved = torch.load(ref_path)
    ref = saved["ref"].to(dev)
    inp = {k: v.to(dev) for k, v in saved["inp"].items()}

    def left():
        return DEADLINE - time.time()

    if engine in ("bf16", "bitsandbytes", "quanto", "quanto_f8", "torchao"):
        label = "quanto" if engine == "quanto_f8" else engine
        offs_e = offloads
        if engine == "bitsandbytes" and dev.type == "cuda":
            offs_e = ["none", "model", "sequential", "balanced", "balanced_split", "group_leaf", "group_block"]
        for scheme, cfgfn in pre_configs(engine):
            failed_load, dmap = None, None
            for off in offs_e:
                if left() < 8:
                    emit(kind="case", engine=label, scheme=scheme, mode="pre", offload=off, ok=None, skipped="deadline"); continue
                if failed_load:
                    emit(kind="case", engine=label, scheme=scheme, mode="pre", offload=off, ok=False, stage="load",
                         skipped="same load error as offload=none", error_type=failed_load["error_type"]); continue
                r = one_case(G, label, scheme, "bf16" if engine == "bf16" else "pre", off,
                             lambda: load_pre(engine, scheme, cfgfn, torch, device_map=dmap), ref, inp,
                             extra=dict(load_variant="device_map=cuda") if dmap else None)
                if r.get("stage") == "load" and not r["ok"]:
                    failed_load = r
                    if engine == "torchao" and dev.type == "cuda" and dmap is None:
                        # does it load when quantized straight onto the GPU?  If so, use that for the other offloads
                        r2 = one_case(G, engine, scheme, "pre", off,
                                      lambda: load_pre(engine, scheme, cfgfn, torch, device_map="cuda"),
                                      ref, inp, extra=dict(load_variant="device_map=cuda"))
                        if r2["ok"] or r2.get("stage") != "load":
                            failed_load, dmap = None, "cuda"
        if engine == "torchao":  # the string form older docs and apps use
            try:
                from diffusers import TorchAoConfig
                TorchAoConfig("int8wo")
                emit(kind="config", engine="torchao", form='TorchAoConfig("int8wo")', ok=True)
            except Exception as e:
                emit(kind="config", engine="torchao", form='TorchAoConfig("int8wo")', ok=False, **err_info(e))
    elif engine == "gguf":
        t = time.time()
        while not os.path.exists(os.path.join(WD, "gguf.done")) and left() > 30 and time.time() - t < 240:
            time.sleep(1)
        emit(kind="gguf_wait", waited_s=time.time() - t, ready=os.path.exists(os.path.join(WD, "gguf.done")))
        for q in ("Q8_0", "Q4_K"):
            p = os.path.join(WD, f"tiny_diffusers_{q}.gguf")
            failed_load = None
            for off in offloads:
                if left() < 8 or not os.path.exists(p):
                    emit(kind="case", engine="gguf", scheme=q, mode="prequantized", offload=off, ok=None,
                         skipped="deadline" if left() < 8 else "file missing"); continue
                if failed_load:
                    emit(kind="case", engine="gguf", scheme=q, mode="prequantized", offload=off, ok=False, stage="load",
                         skipped="same load error", error_type=failed_load["error_type"]); continue
                r = one_case(G, "gguf", q, "prequantized", off, lambda: load_pre("gguf", q, p, torch), ref, inp,
                             extra=dict(layout="diffusers"))
                if r.get("stage") == "load" and not r["ok"]:
                    failed_load = r
        # the original BFL layout at inner width 1024 (diffusers' converter hard-codes 3072)
        p = os.path.join(WD, "tiny_bfl_Q8_0.gguf")
        if os.path.exists(p) and left() > 8:
            one_case(G, "gguf", "Q8_0", "prequantized", "none", lambda: load_pre("gguf", "Q8_0", p, torch), ref, inp,
                     extra=dict(layout="bfl", model="flux_tiny_1024"))
        if left() > 20:
            gguf3072(G, left)
    elif engine == "gguf3072":
        gguf3072(G, left)
        pass
    elif engine == "post":
        from diffusers import FluxTransformer2DModel
        plan = [("bitsandbytes", "nf4", ("none", "model", "sequential", "balanced", "group_block")),
                ("quanto", "qint8", ("none", "model", "sequential", "balanced", "group_block")),
                ("quanto", "qint4", ("none", "sequential", "balanced")),
                ("torchao", "int8wo", ("none", "model", "sequential", "balanced")),
                ("bitsandbytes", "int8", ("none", "model", "sequential")),
                ("torchao", "float8wo", ("none", "sequential"))]
        only = os.environ.get("GD_POST_ONLY")  # e.g. "torchao:int8wo,bitsandbytes:int8"
        if only:
            want = [tuple(x.split(":")) for x in only.split(",")]
            plan = [p for p in plan if (p[0], p[1]) in want]
        for eng, scheme, offs in plan:
            for off in (offs if dev.type == "cuda" else ["none"]):
                if left() < 8:
                    emit(kind="case", engine=eng, scheme=scheme, mode="post", offload=off, ok=None, skipped="deadline"); continue

                def loader(eng=eng, scheme=scheme):
                    m0 = FluxTransformer2DModel.from_pretrained(MODEL_DIR, torch_dtype=torch.bfloat16)
                    return post_quantize(eng, scheme, m0, torch, dev, inp)
                one_case(G, eng, scheme, "post", off, loader, ref, inp)
    elif engine == "nncf":
        from diffusers import FluxTransformer2DModel
        for scheme, offs in (("INT8_ASYM", offloads), ("INT4_SYM", ["none"]), ("INT4_SYM+ignore", offloads),
                             ("INT8_SYM", ["none"])):
            for off in offs:
                if left() < 10:
                    emit(kind="case", engine="nncf", scheme=scheme, mode="post", offload=off, ok=None, skipped="deadline"); continue

                def loader(scheme=scheme):
                    m0 = FluxTransformer2DModel.from_pretrained(MODEL_DIR, torch_dtype=torch.bfloat16)
                    return post_quantize("nncf", scheme, m0, torch, dev, inp)
                one_case(G, "nncf", scheme, "post", off, loader, ref, inp)


# ----------------------------------------------------------------------------------------------------------------
def driver():
    total = float(os.environ.get("GD_BUDGET_S", "540"))
    deadline = T0 + total
    env = dict(os.environ, GD_DEADLINE=str(deadline), PYTHONUNBUFFERED="1")
    emit(kind="start", budget_s=total, argv=sys.argv)
    if os.environ.get("GD_PROBES", "1") == "1":
        probes()
    me = os.path.abspath(__file__)
    order = os.environ.get("GD_ENGINES", "bf16:60,bitsandbytes:80,quanto:60,gguf:90,post:80,torchao:100,nncf:70,quanto_f8:200")
    caps = [(e.split(":")[0], float(e.split(":")[1])) for e in order.split(",")]
    wlog = open(os.path.join(OUT, "workers.log"), "a")
    bg = None
    for eng, cap in caps:
        left = deadline - time.time()
        if left < 15:
            emit(kind="engine_skipped", engine=eng, reason="deadline"); continue
        t = time.time()
        end = min(deadline, t + cap)
        rc, tries = None, 0
        while tries < 4 and end - time.time() > 10:
            tries += 1
            wlog.write(f"\n===== {eng} try {tries} at {time.time() - T0:.1f}s\n"); wlog.flush()
            try:
                r = subprocess.run([sys.executable, me, "worker", eng],
                                   env=dict(env, GD_DEADLINE=str(end), GD_PREV_RC=str(rc)),
                                   timeout=max(5.0, end - time.time()) + 10, stdout=wlog, stderr=subprocess.STDOUT)
                rc = r.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            emit(kind="engine_done", engine=eng, rc=rc, s=time.time() - t, tries=tries)
            if rc == 0 or rc == "timeout":
                break
        if eng in ("bf16", "prep") and bg is None and os.path.exists(MODEL_DIR) and any(e[0] == "gguf" for e in caps):
            bg = subprocess.Popen([sys.executable, me, "gguf_writer"], env=env,
                                  stdout=open(os.path.join(WD, "gguf_writer.log"), "w"), stderr=subprocess.STDOUT)
    if bg is not None:
        if bg.poll() is None:
            bg.kill()
        emit(kind="gguf_writer", rc=bg.returncode, log_tail=open(os.path.join(WD, "gguf_writer.log")).read()[-1500:])
    emit(kind="end", s=time.time() - T0)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "all"
    if cmd == "all":
        driver()
    elif cmd == "probes":
        probes()
    elif cmd == "gguf_writer":
        gguf_writer_main()
    elif cmd == "worker":
        worker(sys.argv[2])
