"""Small image filters for the retouch stage: Gaussian and masked blurs, morphology and YCbCr.

Every filter takes and returns (C, H, W) float32 tensors on any torch device. On the
CPU the Gaussian blur runs through OpenCV, which is about ten times faster there
than a torch convolution; elsewhere it is a separable torch convolution.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, applied to the gamma-encoded values as video does.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
CB_SCALE = 0.5 / (1.0 - LUMA_WEIGHTS[2])
CR_SCALE = 0.5 / (1.0 - LUMA_WEIGHTS[0])

# Share of a blur's window that must hold weight before `fill_from_surroundings` trusts it.
FILL_MIN_WEIGHT = 0.3

# Above this sigma a blur runs on a downsampled copy and is upsampled again.
DIRECT_BLUR_MAX_SIGMA = 6.0


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur every channel with a Gaussian of `sigma` pixels, edges reflected."""
    if sigma <= 0.05:
        return image
    if sigma > DIRECT_BLUR_MAX_SIGMA:
        return _pyramid_blur(image, sigma)
    if image.device.type == "cpu":
        return _opencv_blur(image, sigma)
    return _torch_blur(image, sigma)


def masked_blur(image: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur `image` counting only pixels where `weight` is high (normalised convolution).

    Pixels outside the weight do not bleed in, so a skin average next to an eye or a
    nostril stays a skin average. Where the weight is zero all around, the result is 0.
    """
    stacked = torch.cat([image * weight, weight], dim=0)
    blurred = gaussian_blur(stacked, sigma)
    return blurred[:-1] / blurred[-1:].clamp_min(1e-4)


def fill_from_surroundings(image: torch.Tensor, weight: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Return `image` averaged from the nearest pixels where `weight` is high, at every pixel.

    Masked blurs of doubling sigma are stacked: a pixel takes the finest one whose
    neighbourhood holds enough weight, so a hole is filled from its own rim, as
    inpainting does, and a wide hole reaches further out than a narrow one.
    """
    result = torch.zeros_like(image)
    remaining = torch.ones_like(weight)
    sigma = 1.0
    while True:
        stacked = gaussian_blur(torch.cat([image * weight, weight], dim=0), sigma)
        estimate = stacked[:-1] / stacked[-1:].clamp_min(1e-4)
        if sigma >= max_sigma:
            return result + remaining * estimate
        confidence = (stacked[-1:] / FILL_MIN_WEIGHT).clamp(0.0, 1.0)
        result = result + remaining * confidence * estimate
        remaining = remaining * (1.0 - confidence)
        sigma *= 2.0


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey-level dilation with a square of side 2·radius+1."""
    if radius < 1:
        return mask
    if mask.device.type == "cpu":
        import cv2

        kernel = np.ones((2 * radius + 1, 2 * radius + 1), dtype=np.uint8)
        planes = mask.contiguous().numpy()
        return torch.from_numpy(np.stack([cv2.dilate(plane, kernel) for plane in planes]))
    return _torch_dilate(mask, radius)


def _torch_dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    size = 2 * radius + 1
    batch = mask.unsqueeze(0)
    batch = F.max_pool2d(batch, (1, size), stride=1, padding=(0, radius))
    batch = F.max_pool2d(batch, (size, 1), stride=1, padding=(radius, 0))
    return batch.squeeze(0)


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey-level erosion with a square of side 2·radius+1."""
    return -dilate(-mask, radius)


def closing(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Fill dark features narrower than the square (dilation, then erosion)."""
    return erode(dilate(image, radius), radius)


def opening(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Remove bright features narrower than the square (erosion, then dilation)."""
    return dilate(erode(image, radius), radius)


# Line directions (row step, column step): horizontal, vertical and the two diagonals.
LINE_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def line_closing(image: torch.Tensor, radius: int, direction: tuple[int, int]) -> torch.Tensor:
    """Close with a line of 2·radius+1 pixels: fills dark features shorter than it along `direction`."""
    return _line_extreme(_line_extreme(image, radius, direction, maximum=True), radius, direction, maximum=False)


def half_line_maximum(image: torch.Tensor, radius: int, direction: tuple[int, int]) -> torch.Tensor:
    """Return, at every pixel, the maximum of the `radius` pixels after it along `direction`; beyond the border counts as -inf."""
    if image.device.type == "cpu":
        import cv2

        size = 2 * radius + 1
        kernel = np.zeros((size, size), dtype=np.uint8)
        for step in range(1, radius + 1):
            kernel[radius + step * direction[0], radius + step * direction[1]] = 1
        planes = image.contiguous().numpy()
        border = float(np.finfo(np.float32).min)
        return torch.from_numpy(np.stack([
            cv2.dilate(plane, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=border) for plane in planes
        ]))
    return _torch_half_line_maximum(image, radius, direction)


def _torch_half_line_maximum(image: torch.Tensor, radius: int, direction: tuple[int, int]) -> torch.Tensor:
    row_step, column_step = direction
    pad_rows, pad_columns = radius * abs(row_step), radius * abs(column_step)
    lowest = torch.finfo(image.dtype).min
    padded = F.pad(image.unsqueeze(0), (pad_columns, pad_columns, pad_rows, pad_rows), value=lowest)[0]
    height, width = image.shape[-2:]
    result = torch.full_like(image, lowest)
    for step in range(1, radius + 1):
        top, left = pad_rows + step * row_step, pad_columns + step * column_step
        result = torch.maximum(result, padded[:, top : top + height, left : left + width])
    return result


def line_opening(image: torch.Tensor, radius: int, direction: tuple[int, int]) -> torch.Tensor:
    """Open with a line of 2·radius+1 pixels: removes bright features shorter than it along `direction`."""
    return _line_extreme(_line_extreme(image, radius, direction, maximum=False), radius, direction, maximum=True)


def smoothstep(low: float, high: float, value: torch.Tensor) -> torch.Tensor:
    """0 below `low`, 1 above `high`, a smooth S-curve between."""
    t = ((value - low) / (high - low)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """Convert (3, H, W) RGB to luma Y and colour differences Cb, Cr (0 at grey)."""
    red, green, blue = rgb[0], rgb[1], rgb[2]
    luma = LUMA_WEIGHTS[0] * red + LUMA_WEIGHTS[1] * green + LUMA_WEIGHTS[2] * blue
    return torch.stack([luma, (blue - luma) * CB_SCALE, (red - luma) * CR_SCALE])


def ycc_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_ycc`."""
    luma, cb, cr = ycc[0], ycc[1], ycc[2]
    red = luma + cr / CR_SCALE
    blue = luma + cb / CB_SCALE
    green = (luma - LUMA_WEIGHTS[0] * red - LUMA_WEIGHTS[2] * blue) / LUMA_WEIGHTS[1]
    return torch.stack([red, green, blue])


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """Return the (1, H, W) BT.601 luma of an RGB image."""
    return (LUMA_WEIGHTS[0] * rgb[0] + LUMA_WEIGHTS[1] * rgb[1] + LUMA_WEIGHTS[2] * rgb[2]).unsqueeze(0)


def downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Average `factor`×`factor` blocks; the size must be a multiple of `factor`."""
    if factor == 1:
        return image
    return F.avg_pool2d(image.unsqueeze(0), factor).squeeze(0)


def upsample(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to `size` (height, width)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image.unsqueeze(0), size=size, mode="bilinear", align_corners=False).squeeze(0)


def _line_extreme(image: torch.Tensor, radius: int, direction: tuple[int, int], maximum: bool) -> torch.Tensor:
    """Dilate (maximum) or erode (minimum) along a line; pixels beyond the border do not count."""
    if image.device.type == "cpu":
        import cv2

        size = 2 * radius + 1
        kernel = np.zeros((size, size), dtype=np.uint8)
        for step in range(-radius, radius + 1):
            kernel[radius + step * direction[0], radius + step * direction[1]] = 1
        operation = cv2.dilate if maximum else cv2.erode
        planes = image.contiguous().numpy()
        return torch.from_numpy(np.stack([operation(plane, kernel) for plane in planes]))
    return _torch_line_extreme(image, radius, direction, maximum)


def _torch_line_extreme(image: torch.Tensor, radius: int, direction: tuple[int, int], maximum: bool) -> torch.Tensor:
    # Running extreme over 2·radius+1 shifted copies, built by doubling the span each step.
    sign = 1.0 if maximum else -1.0
    row_step, column_step = direction
    pad_rows, pad_columns = radius * abs(row_step), radius * abs(column_step)
    padded = F.pad((sign * image).unsqueeze(0), (pad_columns, pad_columns, pad_rows, pad_rows), value=-float("inf"))
    length = 2 * radius + 1
    running, span = padded, 1
    while span * 2 <= length:
        running = torch.maximum(running, torch.roll(running, (span * row_step, span * column_step), (-2, -1)))
        span *= 2
    if span < length:
        rest = length - span
        running = torch.maximum(running, torch.roll(running, (rest * row_step, rest * column_step), (-2, -1)))
    running = torch.roll(running, (-radius * row_step, -radius * column_step), (-2, -1))
    height, width = image.shape[-2:]
    return sign * running[0, :, pad_rows : pad_rows + height, pad_columns : pad_columns + width]


def _opencv_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    import cv2

    planes = image.contiguous().numpy()
    blurred = np.empty_like(planes)
    for index in range(planes.shape[0]):
        cv2.GaussianBlur(planes[index], (0, 0), sigma, dst=blurred[index], borderType=cv2.BORDER_REFLECT_101)
    return torch.from_numpy(blurred)


def _torch_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(4.0 * sigma)))
    offsets = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[0]
    batch = image.unsqueeze(0)

    # Reflect padding needs a pad smaller than the side; replicate covers tiny images.
    height, width = image.shape[-2:]
    mode = "reflect" if radius < min(height, width) else "replicate"
    batch = F.pad(batch, (radius, radius, 0, 0), mode=mode)
    batch = F.conv2d(batch, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    batch = F.pad(batch, (0, 0, radius, radius), mode=mode)
    batch = F.conv2d(batch, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return batch.squeeze(0)


def _pyramid_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    # 1. Average blocks of `factor` pixels: a box of width f has variance f²/12.
    factor = max(2, int(sigma / 2.5))
    height, width = image.shape[-2:]
    small = F.interpolate(
        image.unsqueeze(0),
        size=(max(1, round(height / factor)), max(1, round(width / factor))),
        mode="area",
    ).squeeze(0)

    # 2. Blur the small copy with what remains of the variance, then bring it back.
    remaining = math.sqrt(max(sigma**2 - factor**2 / 12.0 - factor**2 / 6.0, 1.0)) / factor
    small = gaussian_blur(small, remaining)
    return upsample(small, (height, width))
