import time, sys
from zapflow.embeddings.e5 import E5Embedder
texts = [f"bench wamid.s4bench{i%7}.{i:07d}" for i in range(640)]
for bs in (16, 32, 64, 128):
    e = E5Embedder(batch_size=bs)
    e.encode(texts[:bs])
    t=time.process_time(); e.encode(texts); dt=time.process_time()-t
    print(bs, f"ms/msg {1000*dt/len(texts):.2f}", flush=True)
m = e._load()
print("tokens", m.token_count(texts[0]))
