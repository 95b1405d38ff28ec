"""Bring a CompressAI checkpoint to JAX and code with it.

    python examples/convert_compressai.py mbt2018-mean-3-e2c7a6b9.pth.tar photo.png [model.npz]

Takes CompressAI's zoo files as downloaded and its training checkpoints (epoch, optimizer and scheduler states
included): the model and its size are detected from the keys. Reading .pth files needs PyTorch
(pip install 'jaxlic[torch]'); the checkpoint is read with torch's weights-only loader, so it runs no code.
"""
import sys

import jaxlic

checkpoint, photo = sys.argv[1], sys.argv[2]
codec = jaxlic.load(checkpoint)                 # converted on the fly; jaxlic.load(checkpoint, model="...") checks
print(codec)
image = jaxlic.read_image(photo)
enc = codec.encode(image)
decoded = codec.decompress(enc.data)
print(f"{len(enc.data)} bytes, {enc.bpp:.4f} bpp, PSNR {float(jaxlic.psnr(image, decoded)):.2f} dB; streams "
      + ", ".join(f"{k} {n} B" for k, n in enc.stream_bytes.items()))
if len(sys.argv) > 3:                           # a jaxlic model file: no torch needed to load it again
    codec.save(sys.argv[3])
    again = jaxlic.load(sys.argv[3])
    assert again.compress(image) == enc.data    # same weights, same tables, same bytes
    print(f"wrote {sys.argv[3]}; `jaxlic compress --checkpoint {sys.argv[3]} ...` codes with it")
