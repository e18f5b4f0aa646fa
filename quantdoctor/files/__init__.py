"""Model files recognised from their headers alone: safetensors, GGUF, diffusers folders."""
