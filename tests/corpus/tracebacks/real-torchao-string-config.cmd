python -c 'from diffusers import TorchAoConfig
TorchAoConfig("int8wo")'
