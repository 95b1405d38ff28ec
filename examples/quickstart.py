import sys, jaxlic

image = jaxlic.read_image(sys.argv[1])          # any image Pillow reads, as (H, W, 3) uint8
codec = jaxlic.load()                           # the default shipped model; or a model file, an official .pth
data = codec.compress(image)                    # bytes: exactly what `jaxlic compress` writes
decoded = codec.decompress(data)                # (H, W, 3) uint8
print(f"{len(data)} bytes, {8 * len(data) / (image.shape[0] * image.shape[1]):.4f} bpp, "
      f"PSNR {float(jaxlic.psnr(image, decoded)):.2f} dB")
