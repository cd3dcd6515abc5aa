"""
Exporting to ONNX and checking in ONNX Runtime
==============================================

:func:`xpnet.onnx.export` writes a trained model as a standard ONNX graph (eval mode: batch
norm with its running statistics, dropout gone) with a dynamic batch size. Here a
``mnist_resnet`` trained briefly is exported, run in ONNX Runtime, and compared with
xpnet's own forward on the same test images.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime

import xpnet
from xpnet import models, nn, optim
from xpnet.datasets import load_mnist
from xpnet.inference import probabilities
from xpnet.onnx import export, read_metadata
from xpnet.train import fit

(x_train, y_train), (x_test, y_test) = load_mnist(normalize=True)
model = models.build("mnist_resnet", seed=0, backend="numpy")
fit(
    model,
    nn.CrossEntropyLoss(),
    optim.Adam(model.parameters(), lr=3e-3),
    (x_train[:10000], y_train[:10000]),
    epochs=1,
    progress=False,
    log=None,
)

path = Path(tempfile.mkdtemp()) / "mnist_resnet.onnx"
export(model, path, input_shape=(1, 28, 28))
print(path.name, f"{path.stat().st_size / 1024:.0f} KiB;", "metadata:", sorted(read_metadata(path)))

session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
images = x_test[:1000]
(logits_onnx,) = session.run(["logits"], {"images": images})
model.eval()
logits_xpnet = xpnet.to_numpy(model(xpnet.asarray(images)))
print(f"largest difference in logits: {np.abs(logits_onnx - logits_xpnet).max():.2e}")
print("same predicted class:", np.mean(logits_onnx.argmax(1) == logits_xpnet.argmax(1)))
print(
    f"accuracy: {np.mean(xpnet.to_numpy(probabilities(model, images)).argmax(1) == y_test[:1000]):.3f}"
)

# %%
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.scatter(logits_xpnet.ravel(), logits_onnx.ravel(), s=2)
ax.set(xlabel="xpnet logit", ylabel="ONNX Runtime logit", title="1,000 test images x 10 classes")
plt.show()
