"""Fork a run at an epoch checkpoint into a new run folder (lab): hardlinked earlier checkpoints, metrics up to that epoch."""
import json, os, sys
from pathlib import Path
import torch
src, epoch, dst = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
changes = json.loads(sys.argv[4])
dst.mkdir(parents=True)
state = torch.load(src / f"epoch-{epoch:03d}.pt", map_location="cpu", weights_only=False)
state["config"].update({k: v for k, v in changes.items() if k in state["config"]})
torch.save(state, dst / "last.pt")
cfg = json.loads((src / "config.json").read_text()); cfg.update(changes)
(dst / "config.json").write_text(json.dumps(cfg, indent=1))
lines = (src / "metrics.csv").read_text().splitlines()
keep = [lines[0]] + [l for l in lines[1:] if int(l.split(",")[1]) < epoch]
(dst / "metrics.csv").write_text("\n".join(keep) + "\n")
for e in range(1, epoch + 1):
    os.link(src / f"epoch-{e:03d}.pt", dst / f"epoch-{e:03d}.pt")
print("forked", src, epoch, "->", dst, changes, "step", state["step"], "epoch", state["epoch"], "metrics rows", len(keep) - 1, "last", keep[-1][:60])
