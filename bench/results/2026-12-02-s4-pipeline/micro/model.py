import time, numpy as np, sys
from zapflow.embeddings import local
from zapflow.embeddings.local import LocalEmbedder
e = LocalEmbedder(batch_size=int(sys.argv[1]) if len(sys.argv)>1 else 16)
texts = [f"bench wamid.s4bench{i%7}.{i:07d}" for i in range(640)]
tok, bert = e._load()
print("tokens", len(tok.encode(texts[0]).ids))
e.encode(texts[:64])
import cProfile, pstats
t=time.process_time(); e.encode(texts); dt=time.process_time()-t
print(f"ms/msg {1000*dt/len(texts):.2f}")
# components
orig_block = bert._block
acc = {}
def timed(name, f):
    def w(*a, **k):
        t=time.perf_counter(); r=f(*a, **k); acc[name]=acc.get(name,0)+time.perf_counter()-t; return r
    return w
local._gelu = timed("gelu", local._gelu)
bert._norm = timed("norm", bert._norm)
t=time.process_time(); e.encode(texts); dt=time.process_time()-t
print(f"ms/msg {1000*dt/len(texts):.2f}", {k: round(1000*v/len(texts),2) for k,v in acc.items()})
