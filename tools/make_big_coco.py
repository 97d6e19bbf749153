#!/usr/bin/env python3
"""Writes a COCO annotation file the size of COCO 2017 train (118,287 images, 860,001 boxes with
polygon segmentations, ~450 MB) to time the COCO reader on: seeded, no images.

Run: python3 tools/make_big_coco.py OUT.json [IMAGES] [BOXES]
"""

import json
import random
import sys


def main():
    out = sys.argv[1]
    n_images = int(sys.argv[2]) if len(sys.argv) > 2 else 118_287
    n_boxes = int(sys.argv[3]) if len(sys.argv) > 3 else 860_001
    rng = random.Random(2017)
    ids = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    images = []
    for i in range(n_images):
        images.append({"license": 1, "file_name": f"{i + 1:012d}.jpg", "coco_url": f"http://images.cocodataset.org/train2017/{i + 1:012d}.jpg",
                       "height": rng.randint(240, 640), "width": rng.randint(240, 640),
                       "date_captured": "2013-11-14 16:28:13", "flickr_url": "http://farm4.staticflickr.com/x.jpg", "id": i + 1})
    with open(out, "w") as f:
        f.write('{"info": {"description": "generated"}, "licenses": [], "images": ')
        json.dump(images, f)
        f.write(', "annotations": [')
        for a in range(n_boxes):
            im = images[rng.randrange(n_images)]
            w = round(rng.uniform(2, im["width"] / 2), 2)
            h = round(rng.uniform(2, im["height"] / 2), 2)
            x = round(rng.uniform(0, im["width"] - w), 2)
            y = round(rng.uniform(0, im["height"] - h), 2)
            # A polygon of ~20 points: the bulk of the real file's bytes.
            poly = []
            for _ in range(20):
                poly += [round(x + rng.uniform(0, w), 2), round(y + rng.uniform(0, h), 2)]
            ann = {"segmentation": [poly], "area": round(w * h * 0.6, 4), "iscrowd": 0,
                   "image_id": im["id"], "bbox": [x, y, w, h], "category_id": rng.choice(ids), "id": a + 1}
            if a:
                f.write(", ")
            json.dump(ann, f)
        f.write('], "categories": ')
        json.dump([{"supercategory": "x", "id": i, "name": f"c{i}"} for i in ids], f)
        f.write("}")


if __name__ == "__main__":
    main()
