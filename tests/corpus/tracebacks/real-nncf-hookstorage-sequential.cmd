python -c 'import torch, nncf
m = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.GELU(), torch.nn.Linear(256, 256))
x = torch.randn(4, 256)
nncf.compress_weights(m, mode=nncf.CompressWeightsMode.INT8_ASYM, dataset=nncf.Dataset([x]))'
