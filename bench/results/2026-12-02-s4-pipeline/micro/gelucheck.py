import numpy as np
from zapflow.embeddings import local
from zapflow.embeddings.local import LocalEmbedder
def old_erf(x):
    sign = np.sign(x); a = np.abs(x); t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))
def old_gelu(x): return (0.5 * x * (1.0 + old_erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)
texts = ["olá, quero saber o preço", "bench wamid.x.0000001", "Bom dia! Vocês entregam em Campinas?", "ok"]
e = LocalEmbedder(); new = e.encode(texts)
local._gelu = old_gelu; old = e.encode(texts)
print(np.abs(new-old).max(), (new*old).sum(1))
