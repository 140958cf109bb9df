"""CPU-ms per text of the two offline models on bench texts and on short chat lines (one
thread each, process CPU time, so the neighbours' load inflates it little)."""
import time

from zapflow.embeddings.e5 import E5Embedder
from zapflow.embeddings.local import LocalEmbedder

BENCH = [f"bench wamid.s5bench{i % 7}.{i:07d}" for i in range(640)]
CHAT = [
    "Bom dia! Vocês entregam em Campinas?", "quero saber o preço do plano anual",
    "meu pedido ainda não chegou, podem verificar?", "Can I change my delivery address?",
    "obrigado pelo atendimento, resolveu sim", "qual o horário de funcionamento no sábado?",
    "preciso da segunda via do boleto", "o produto veio com defeito, como faço a troca?",
] * 80
for name, model in (("e5", E5Embedder()), ("minilm", LocalEmbedder())):
    for label, texts in (("bench", BENCH), ("chat", CHAT)):
        model.encode(texts[:64])  # load, warm
        t = time.process_time()
        model.encode(texts)
        print(name, label, f"{1000 * (time.process_time() - t) / len(texts):.2f} CPU-ms/text")
