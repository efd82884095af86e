#!/usr/bin/env python3
"""Trains, in PyTorch, the same network with the same recipe as a Dropline model, for comparison.

    python3 scripts/torch_reference_training.py <dropline model folder> <data folder> [--test <test folder>]

It reads the Dropline model's model.json for the network description, the class list and the training
configuration (image size, epochs, batch size, SGD momentum and weight decay on conv and dense weights
only, cosine schedule with linear warm-up per step, label smoothing, random rotation and horizontal
flip on the prepared image, early stopping on validation accuracy, keep the best epoch), then trains
from scratch with Pillow for decoding and PyTorch eager on 2 threads, and prints a JSON line with the
validation and test accuracy of the kept epoch and the wall time. Initialisation follows Dropline's:
conv weights He-normal (fan out), dense weights uniform(+-1/sqrt(fan in)), biases 0.
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def prepare(path, size):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    scale = max(size / w, size / h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    left, top = round((nw - size) / 2), round((nh - size) / 2)
    return im.crop((left, top, left + size, top + size))


def load(folder, classes, size):
    images, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(folder, name))):
            if f.startswith("."):
                continue
            images.append(prepare(os.path.join(folder, name, f), size))
            labels.append(label)
    return images, labels


def tensor(images):
    a = np.stack([np.asarray(im, dtype=np.float32) / 255 for im in images])
    a = (a - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(a.transpose(0, 3, 1, 2).copy())


class Graph(torch.nn.Module):
    """A Dropline network description as a PyTorch module (symmetric padding only: Dropline's own networks)."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.mods = torch.nn.ModuleDict()
        channels = {}
        for l in layers:
            (op, a), = l["operation"].items()
            n = l["name"].replace(".", "_")
            if op == "input":
                channels[l["name"]] = a["channels"]
                continue
            c = channels[l["inputs"][0]]
            if op == "conv2d":
                p = a["padding"]["explicit"]
                self.mods[n] = torch.nn.Conv2d(c, a["filters"], a["kernel"], a["stride"], padding=(p["top"], p["left"]),
                                               groups=a["groups"], bias=a["bias"])
                torch.nn.init.kaiming_normal_(self.mods[n].weight, mode="fan_out", nonlinearity="relu")
                c = a["filters"]
            elif op == "batch_norm":
                self.mods[n] = torch.nn.BatchNorm2d(c, eps=a["epsilon"], momentum=a["momentum"])
            elif op == "dense":
                self.mods[n] = torch.nn.Linear(c, a["units"], bias=a["bias"])
                bound = 1 / math.sqrt(c)
                torch.nn.init.uniform_(self.mods[n].weight, -bound, bound)
                torch.nn.init.zeros_(self.mods[n].bias)
                c = a["units"]
            channels[l["name"]] = c

    def forward(self, x):
        v = {}
        for l in self.layers:
            (op, a), = l["operation"].items()
            n = l["name"].replace(".", "_")
            if op == "input":
                v[l["name"]] = x
                continue
            y = v[l["inputs"][0]]
            if op in ("conv2d", "batch_norm", "dense"):
                y = self.mods[n](y)
            elif op == "relu":
                y = F.relu(y)
            elif op == "max_pool":
                y = F.max_pool2d(y, a["kernel"], a["stride"])
            elif op == "global_avg_pool":
                y = y.mean(dim=(2, 3))
            elif op == "dropout":
                y = F.dropout(y, a["rate"], self.training)
            elif op == "add":
                y = y + v[l["inputs"][1]]
            else:
                raise ValueError(op)
            v[l["name"]] = y
        return v[self.layers[-1]["name"]]


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)])
    return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--test")
    args = parser.parse_args()
    spec = json.load(open(os.path.join(args.model, "model.json")))
    c = spec["configuration"]
    torch.set_num_threads(2)
    torch.manual_seed(c["seed"])
    random.seed(c["seed"])
    size = c["image_size"]
    classes = spec["classes"]
    start = time.time()
    train_images, train_labels = load(os.path.join(args.data, "train"), classes, size)
    val_x, val_y = tensor(load(os.path.join(args.data, "validation"), classes, size)[0]), None
    val_y = torch.tensor(load(os.path.join(args.data, "validation"), classes, size)[1])
    model = Graph(spec["network"]["layers"])
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    rest = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() > 1)]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": c["weight_decay"]}, {"params": rest, "weight_decay": 0}],
                          lr=c["learning_rate"], momentum=c["momentum"])
    batch = c["batch_size"]
    steps = len(train_images) // batch
    warm, total = c["warmup_epochs"] * steps, c["epochs"] * steps
    step, best, history = 0, None, []
    for epoch in range(1, c["epochs"] + 1):
        model.train()
        order = list(range(len(train_images)))
        random.shuffle(order)
        for b in range(steps):
            idx = order[b * batch:(b + 1) * batch]
            ims = []
            for i in idx:
                im = train_images[i]
                if c["rotation_degrees"] > 0:
                    im = im.rotate(random.uniform(-c["rotation_degrees"], c["rotation_degrees"]), Image.BILINEAR, fillcolor=(0, 0, 0))
                if c["horizontal_flip"] and random.random() < 0.5:
                    im = im.transpose(Image.FLIP_LEFT_RIGHT)
                ims.append(im)
            lr = c["learning_rate"] * (step + 1) / warm if step < warm else \
                0.5 * c["learning_rate"] * (1 + math.cos(math.pi * min((step - warm) / max(total - warm, 1), 1)))
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad()
            loss = F.cross_entropy(model(tensor(ims)), torch.tensor([train_labels[i] for i in idx]),
                                   label_smoothing=c["label_smoothing"])
            loss.backward()
            opt.step()
            step += 1
        acc, vloss = accuracy(model, val_x, val_y)
        history.append(acc)
        if best is None or acc > best[1] or (acc == best[1] and vloss < best[2]):
            best = (epoch, acc, vloss, {k: v.clone() for k, v in model.state_dict().items()})
        print(f"epoch {epoch}: val acc {acc:.3f} loss {vloss:.4f}", flush=True)
        if c["patience"] > 0 and epoch - best[0] >= c["patience"]:
            break
    model.load_state_dict(best[3])
    result = {"best_epoch": best[0], "epochs_run": len(history), "validation_accuracy": best[1],
              "seconds": time.time() - start}
    if args.test:
        test_images, test_labels = load(args.test, classes, size)
        result["test_accuracy"] = accuracy(model, tensor(test_images), torch.tensor(test_labels))[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
