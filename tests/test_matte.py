"""Person matte and decontamination on real portraits and on composites whose true matte is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pipeline.device import to_tensor
from pipeline.faces import shared_finder
from pipeline.matte import PALETTE_SIZE, _cell_histograms, _segment, box_mean, decontaminate, person_matte


def _iou(matte: np.ndarray, reference: np.ndarray) -> float:
    ours, theirs = matte > 0.5, reference > 0.5
    return float((ours & theirs).sum() / (ours | theirs).sum())


def _grabcut_reference(rgb: np.ndarray) -> np.ndarray:
    """A binary person matte from GrabCut (a colour graph cut), seeded by the segmentation model's mask."""
    height, width = rgb.shape[:2]
    probability = cv2.resize(_segment(to_tensor(rgb))[0].cpu().numpy(), (width, height))
    erosion = np.ones((max(3, int(0.02 * max(height, width))),) * 2, np.uint8)
    mask = np.where(probability > 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[cv2.erode((probability > 0.5).astype(np.uint8), erosion) == 1] = cv2.GC_FGD
    mask[cv2.erode((probability < 0.5).astype(np.uint8), erosion) == 1] = cv2.GC_BGD
    background_model, foreground_model = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask, None, background_model, foreground_model, 4,
                cv2.GC_INIT_WITH_MASK)
    reference = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(reference)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == largest).astype(np.float32)


def _new_backgrounds(height: int, width: int, shared_photos) -> dict[str, np.ndarray]:
    rows = np.linspace(0, 1, height)[:, None, None]
    flags = cv2.cvtColor(cv2.imread(str(shared_photos / "obama.jpg")), cv2.COLOR_BGR2RGB)[0:400, 0:140]
    return {
        "studio grey": np.full((height, width, 3), 0.55),
        "navy": np.full((height, width, 3), [0.08, 0.10, 0.20]),
        "warm gradient": np.concatenate([0.9 - 0.4 * rows, 0.7 - 0.3 * rows, 0.5 - 0.2 * rows], axis=2)
        * np.ones((1, width, 1)),
        "flags": cv2.resize(flags, (width, height)) / 255.0,
    }


@pytest.fixture(scope="module")
def biden_person(shared_photos):
    """biden2.jpg at 600 px, its faces, and a GrabCut reference matte."""
    rgb = cv2.cvtColor(cv2.imread(str(shared_photos / "biden2.jpg")), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (600, 600), interpolation=cv2.INTER_AREA)
    return rgb, shared_finder().find(rgb), _grabcut_reference(rgb)


def test_box_mean_matches_direct_window():
    values = torch.rand(2, 23, 31)
    radius = 4
    expected = torch.zeros_like(values)
    for row in range(23):
        for column in range(31):
            window = values[:, max(0, row - radius) : row + radius + 1, max(0, column - radius) : column + radius + 1]
            expected[:, row, column] = window.mean(dim=(1, 2))
    assert torch.allclose(box_mean(values, radius), expected, atol=1e-5)


@pytest.mark.parametrize("shrink", [1, 5])
def test_cell_histograms_match_pooled_one_hot_planes(shrink):
    # The direct count per grid cell equals pooling full-size one-hot planes, including the partial cells at the edges.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, PALETTE_SIZE, size=(37, 53))
    subject, backdrop = rng.random((37, 53)) < 0.4, rng.random((37, 53)) < 0.3
    one_hot = torch.stack([torch.from_numpy(labels == index).float() for index in range(PALETTE_SIZE)])
    sides = [torch.from_numpy(subject).float()[None], torch.from_numpy(backdrop).float()[None]]
    planes = torch.cat([*sides, one_hot * sides[0], one_hot * sides[1]])
    pooled = planes if shrink == 1 else torch.nn.functional.avg_pool2d(planes[None], shrink, shrink, ceil_mode=True)[0]

    counted = _cell_histograms(labels, subject, backdrop, shrink)

    assert counted.shape == (2 + 2 * PALETTE_SIZE, -(-37 // shrink), -(-53 // shrink))
    assert torch.allclose(counted, pooled, atol=1e-6)
    assert float(counted[2 : 2 + PALETTE_SIZE].sum(0).sub(counted[0]).abs().max()) < 1e-6  # clusters add up to the side


def test_matte_on_astronaut_covers_face_not_corners(astronaut_rgb):
    faces = shared_finder().find(astronaut_rgb)
    matte = person_matte(to_tensor(astronaut_rgb), faces)

    assert matte.shape == (1, 512, 512)
    assert matte.dtype == torch.float32
    assert float(matte.min()) >= 0.0
    assert float(matte.max()) <= 1.0
    hull = cv2.convexHull(faces[0].landmarks[:, :2].astype(np.float32)).astype(np.int32)
    face_region = np.zeros((512, 512), np.uint8)
    cv2.fillConvexPoly(face_region, hull, 1)
    face_region = cv2.erode(face_region, np.ones((5, 5), np.uint8))  # rasterisation differs by a pixel
    assert float(matte[0].numpy()[face_region == 1].min()) == 1.0
    assert float(matte[0, :40, 460:].max()) == 0.0  # the shuttle's corner of the frame


def test_matte_matches_reference_on_plain_backdrop(biden_person):
    rgb, faces, reference = biden_person
    matte = person_matte(to_tensor(rgb), faces)[0].numpy()
    iou = _iou(matte, reference)
    print(f"biden2 IoU vs GrabCut reference: {iou:.4f}")
    assert iou >= 0.90


def test_matte_iou_on_synthetic_composites(biden_person, shared_photos):
    rgb, faces, reference = biden_person
    known = cv2.GaussianBlur(reference, (0, 0), 0.7)[..., None]
    for name, background in _new_backgrounds(600, 600, shared_photos).items():
        composite = np.round((known * rgb / 255.0 + (1 - known) * background) * 255).astype(np.uint8)
        matte = person_matte(to_tensor(composite), shared_finder().find(composite))[0].numpy()
        iou = _iou(matte, known[..., 0])
        print(f"composite on {name}: IoU {iou:.4f}")
        assert iou >= 0.90, name


def test_matte_leaves_far_backdrop_clean(biden_person, shared_photos):
    """On white, backdrop pixels farther than 5 % of the face width from the subject stay within ΔE 2."""
    from skimage.color import rgb2lab

    from pipeline.backdrops import BackdropSpec, replace_backdrop

    rgb, faces, reference = biden_person
    known = cv2.GaussianBlur(reference, (0, 0), 0.7)[..., None]
    distance = cv2.distanceTransform((reference < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    far = distance > 0.05 * faces[0].box[2]
    for name, background in _new_backgrounds(600, 600, shared_photos).items():
        composite = np.round((known * rgb / 255.0 + (1 - known) * background) * 255).astype(np.uint8)
        image = to_tensor(composite)
        composite_faces = shared_finder().find(composite)
        matte = person_matte(image, composite_faces)
        white = replace_backdrop(BackdropSpec("white"), image, matte, composite_faces)
        delta_e = np.linalg.norm(rgb2lab(white.permute(1, 2, 0).numpy()[far]) - [100, 0, 0], axis=1)
        print(f"white over {name}: far pixels with ΔE > 2: {(delta_e > 2).mean():.5f}, max ΔE {delta_e.max():.2f}")
        assert (delta_e > 2).mean() < 0.001, name


def test_decontaminate_removes_green_fringe(biden_person):
    rgb, faces, reference = biden_person
    subject = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    alpha = torch.from_numpy(cv2.GaussianBlur(reference, (0, 0), 3.0))[None]
    green = torch.tensor([0.1, 0.8, 0.2]).view(3, 1, 1)
    observed = subject * alpha + green * (1 - alpha)

    estimate = decontaminate(observed, alpha)

    # Only inside the reference outline is the true subject colour known.
    band = ((alpha > 0.1) & (alpha < 0.9) & (torch.from_numpy(reference)[None] > 0.5)).expand(3, -1, -1)
    naive_error = float((observed - subject).abs()[band].mean())
    error = float((estimate - subject).abs()[band].mean())

    def green_cast(colours):
        return float((colours[1] - (colours[0] + colours[2]) / 2)[band[0]].mean())

    print(f"edge band colour error: naive {naive_error:.4f}, decontaminated {error:.4f}; green cast: "
          f"true {green_cast(subject):.4f}, naive {green_cast(observed):.4f}, decontaminated {green_cast(estimate):.4f}")
    assert error < 0.6 * naive_error
    assert abs(green_cast(estimate) - green_cast(subject)) < 0.03


def test_decontaminate_keeps_solid_and_empty_pixels(astronaut_rgb):
    image = to_tensor(astronaut_rgb)
    matte = torch.zeros((1, 512, 512))
    matte[:, 100:400, 100:400] = 1.0
    matte[:, 100:400, 95:100] = 0.5

    estimate = decontaminate(image, matte)

    solid = (matte == 1).expand(3, -1, -1)
    empty = (matte == 0).expand(3, -1, -1)
    assert torch.equal(estimate[solid], image[solid])
    assert torch.equal(estimate[empty], image[empty])


def test_edge_boxes_are_disjoint_and_cover_the_band():
    from pipeline.matte import band_rectangles

    generator = torch.Generator().manual_seed(3)
    band = torch.rand((137, 101), generator=generator) > 0.97
    for full_size in [(1137, 910), (1300, 1000), (137, 101)]:
        coverage = torch.zeros(full_size, dtype=torch.int32)
        for top, bottom, left, right in band_rectangles(band, full_size):
            coverage[top:bottom, left:right] += 1
        enlarged = torch.nn.functional.interpolate(band[None, None].float(), size=full_size, mode="nearest")[0, 0] > 0
        assert int(coverage.max()) == 1, full_size
        assert bool((coverage[enlarged] == 1).all()), full_size


def test_box_pixels_cover_each_pixel_once():
    from pipeline.matte import box_pixels, sample_smooth_at

    boxes = [(0, 3, 5, 9), (3, 10, 0, 2), (12, 13, 40, 47)]
    rows, columns = box_pixels(boxes)

    marked = torch.zeros((20, 50), dtype=torch.int32)
    marked.index_put_((rows, columns), torch.ones_like(rows, dtype=torch.int32), accumulate=True)
    expected = torch.zeros_like(marked)
    for top, bottom, left, right in boxes:
        expected[top:bottom, left:right] = 1
    assert torch.equal(marked, expected)
    assert box_pixels([])[0].numel() == 0

    small = torch.rand((2, 7, 11), generator=torch.Generator().manual_seed(5))
    enlarged = torch.nn.functional.interpolate(small[None], size=(20, 50), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(sample_smooth_at(small, rows, columns, (20, 50)), enlarged[:, rows, columns], atol=1e-6)


def test_light_wrap_has_no_row_stripes_on_large_frame():
    """A straight edge on a frame past the working size gets the same wrap on every row (no comb)."""
    from pipeline.backdrops import composite

    height, width = 1400, 1200
    columns = torch.arange(width, dtype=torch.float32)
    matte = ((700.5 - columns) / 3).clamp(0, 1).view(1, 1, -1).expand(1, height, width).contiguous()
    skin = torch.tensor([0.9, 0.7, 0.6]).view(3, 1, 1).expand(3, height, width)
    navy = torch.tensor([0.1, 0.32, 0.46]).view(3, 1, 1).expand(3, height, width).contiguous()

    wrapped = composite(skin, matte, navy.clone(), light_wrap=0.3)
    plain = composite(skin, matte, navy.clone(), light_wrap=0.0)

    wrap = (wrapped - plain)[:, 200:1200, 680:702].abs().sum(0)
    assert float(wrap.max()) > 0.01
    row_to_row = (wrap[1:] - wrap[:-1]).abs().max()
    print(f"largest row-to-row change of the wrap along a straight edge: {float(row_to_row):.5f}")
    assert float(row_to_row) < 0.002


def test_backdrop_colours_beside_the_head_are_dropped():
    """A coarse mask reaching into a pale window block beside a dark head is lowered there, not on the head."""
    from pipeline.matte import _drop_backdrop_colours

    size = 400
    rows, columns = np.mgrid[0:size, 0:size]
    head = ((rows - 200) / 120) ** 2 + ((columns - 200) / 90) ** 2 <= 1
    guide = np.empty((size, size, 3), np.float32)
    guide[:] = (0.55, 0.25, 0.22)  # curtain
    window = (columns // 12) % 3 != 0
    guide[window & (rows < 360)] = (0.85, 0.9, 0.95)  # panes with dark mullions
    guide[~window & (rows < 360)] = (0.2, 0.2, 0.22)
    guide[head] = (0.35, 0.22, 0.16)
    coarse = (((rows - 200) / 120) ** 2 + ((columns - 200) / 118) ** 2 <= 1).astype(np.float32)
    faces_solid = np.zeros((size, size), np.float32)
    faces_solid[150:260, 150:250] = 1

    lowered = _drop_backdrop_colours(torch.from_numpy(guide).permute(2, 0, 1), torch.from_numpy(coarse)[None],
                                     torch.from_numpy(faces_solid)[None], band=32.0, last_row=size)[0].numpy()

    overreach = (coarse > 0.5) & ~head & window
    print(f"mean mask on the overreaching panes: {lowered[overreach].mean():.3f}, on the head: {lowered[head].mean():.3f}")
    assert lowered[overreach].mean() < 0.3
    assert lowered[head].min() > 0.5


@pytest.mark.parametrize("name", ["obama.jpg", "obama2.jpg"])
def test_grey_hair_before_a_pale_window_stays_subject(shared_photos, name):
    # Grey hair at the temples shares the window's colours; where the model is sure it is the person, it stays.
    from pipeline.matte import HAIR_ZONE_GROWTH, _skull_mask

    rgb = cv2.cvtColor(cv2.imread(str(shared_photos / name)), cv2.COLOR_BGR2RGB)
    faces = shared_finder().find(rgb)
    image = to_tensor(rgb)
    height, width = rgb.shape[:2]
    score = cv2.resize(_segment(image)[0].numpy(), (width, height))
    skull = _skull_mask(faces[0], 1.0, (height, width))[0].numpy() > 0
    around = _skull_mask(faces[0], 1.0, (height, width), HAIR_ZONE_GROWTH)[0].numpy() > 0
    sure_hair = around & ~skull & (score >= 0.9)

    matte = person_matte(image, faces)[0].numpy()

    assert sure_hair.sum() > 5000
    assert (matte[sure_hair] < 0.5).mean() < 0.01  # 4 % of it was cut away before


def test_trimmed_hull_drops_overshoot_keeps_inner_pale():
    from pipeline.faces import LEFT_FACE_EDGE, RIGHT_FACE_EDGE, Face
    from pipeline.matte import _face_mask, _trimmed_hull

    # 1. A skin-coloured face of radius 86 on a white backdrop, and a mesh outline of radius 92 around it, as a
    #    turned face's outline lies past the cheek. A pale arm of glasses runs along the face's edge, inside it:
    #    backdrop-coloured, but not joined to the backdrop.
    size = 300
    rows, columns = np.mgrid[:size, :size]
    distance = np.hypot(columns + 0.5 - 150, rows + 0.5 - 150)
    angle = np.degrees(np.arctan2(rows + 0.5 - 150, columns + 0.5 - 150))
    rgb = np.full((size, size, 3), 0.97, dtype=np.float32)
    rgb[distance <= 86] = [0.62, 0.42, 0.32]
    arm = (distance >= 82.5) & (distance <= 84.5) & (np.abs(angle) < 40)
    rgb[arm] = 0.93
    angles = np.linspace(0, 2 * np.pi, 478, endpoint=False)
    landmarks = np.stack([150 + 92 * np.cos(angles), 150 + 92 * np.sin(angles), np.zeros(478)], axis=1).astype(np.float32)
    landmarks[RIGHT_FACE_EDGE, :2], landmarks[LEFT_FACE_EDGE, :2] = (58, 150), (242, 150)
    face = Face(box=(58.0, 58.0, 184.0, 184.0), score=0.9, keypoints=np.zeros((6, 2), np.float32), landmarks=landmarks)
    guide = torch.from_numpy(rgb).permute(2, 0, 1)
    coarse = torch.from_numpy((distance <= 88).astype(np.float32))[None]

    # 2. The outline's overshoot on white goes to the colour model; the face and the glasses' arm stay solid.
    hull = _face_mask(face, 1.0, (size, size))
    trimmed = _trimmed_hull(face, 1.0, guide, hull, coarse)[0].numpy() > 0.5
    overshoot = (hull[0].numpy() > 0.5) & (distance > 87)
    assert trimmed[overshoot].mean() < 0.05
    assert trimmed[distance <= 85].all()
    assert trimmed[arm].all()


def test_bystander_apart_from_subject_is_backdrop(astronaut_rgb):
    # Two people side by side, apart: the subject's matte leaves the other one out, the other's face included.
    rgb = np.ascontiguousarray(np.hstack([astronaut_rgb, astronaut_rgb]))
    faces = shared_finder().find(rgb)
    assert len(faces) == 2
    subject, bystander = faces
    matte = person_matte(to_tensor(rgb), [subject], bystanders=[bystander])[0].numpy()

    def at_centre(face) -> float:
        x, y, width, height = face.box
        return float(matte[round(y + height / 2), round(x + width / 2)])

    assert at_centre(subject) == 1.0
    assert at_centre(bystander) == 0.0
    other_half = slice(512, 1024) if bystander.box[0] >= 512 else slice(0, 512)
    assert (matte[:, other_half] > 0.5).mean() < 0.01
    assert (person_matte(to_tensor(rgb), faces)[0].numpy()[:, other_half] > 0.5).mean() > 0.2, "both are people when both are subjects"
