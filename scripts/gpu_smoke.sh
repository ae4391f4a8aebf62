#!/bin/bash
# Run every molgen command on a GPU, as a user would, on the embedded data; one line per step.
#
#   bash scripts/gpu_smoke.sh [DEVICE] [LOG]     (default: cuda, gpu_smoke.log)
#   N=2000 NS=2000 OMP_NUM_THREADS=1 bash scripts/gpu_smoke.sh cpu  (a CPU check of the script itself)
#
# Exits non-zero if any step failed. Also checks that two seeded samples are identical.
# Used on an H100 on 2026-11-23 (docs/benchmarks.md, "On one GPU"). On a machine without
# molgen installed, put the repository on PYTHONPATH first.
set -u
cd "$(dirname "$0")/.." || exit 1
DEV=${1:-cuda}
LOG=${2:-gpu_smoke.log}
W=$(mktemp -d)
M="python3 -m molgen"
FAILED=0
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1 MOLGEN_CACHE=$W/cache
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$W/$name.out" 2>&1
  local rc=$?
  echo "STEP $name rc=$rc $((SECONDS - t0))s"
  if [ $rc != 0 ]; then FAILED=1; tail -15 "$W/$name.out"; else tail -2 "$W/$name.out"; fi
}
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
DATA=data/moses_train_50k.smi.gz
N=${N:-20000}    # training molecules of the first model
NS=${NS:-20000}  # molecules per sampling step
step train 180 $M train --data $DATA --representation selfies --epochs 2 --limit $N --device $DEV --out $W/r1 --quiet
step sample 120 $M sample --model $W/r1 -n 2000 --device $DEV -o $W/s1.smi --seed 0 --grid $W/grid.png
step sample_default_a 120 $M sample -n $NS --device $DEV -o $W/s2.smi --seed 0
step sample_default_b 120 $M sample -n $NS --device $DEV -o $W/s3.smi --seed 0
if cmp -s $W/s2.smi $W/s3.smi; then echo "same seed, same samples: yes"; else echo "same seed, same samples: NO"; FAILED=1; fi
step sample_bf16 120 $M sample -n $NS --device $DEV -o $W/s4.smi --seed 0 --precision bf16
step encode 120 $M encode -i data/moses_test_5k.smi.gz -o $W/z.npy --device $DEV
step decode 120 $M decode --latents $W/z.npy -o $W/dec.smi --device $DEV
step reconstruct 120 $M reconstruct -i data/moses_test_5k.smi.gz --limit 1000 --device $DEV
step fit_prior 180 $M fit-prior --model $W/r1 --components 4 -o $W/p1.safetensors
step tune_sampling 180 $M tune-sampling --model $W/p1.safetensors --temperatures 0.5,1.0 -n 500 -o $W/t1.safetensors
zcat data/moses_test_5k.smi.gz | head -500 > $W/t500.smi
step score 300 $M score --model $W/r1 -i $W/t500.smi --device $DEV
step optimize_gradient 240 $M optimize --objective qed --method gradient --budget 200 --device $DEV -o $W/og --quiet
step optimize_bo 300 $M optimize --objective qed --method bo --budget 60 --device $DEV -o $W/ob --quiet
step benchmark 240 $M benchmark --generated $W/s2.smi --reference data/moses_test_5k.smi.gz --device $DEV -o $W/bench
step conditional 180 $M train --data $DATA --representation selfies --epochs 1 --limit 5000 --condition-on logp,qed --condition-dropout 0.2 --device $DEV --out $W/rc --quiet
step conditional_sample 120 $M sample --model $W/rc -n 500 --condition "logp=2.5,qed=0.8" --guidance 2 --device $DEV -o $W/sc.smi
step transformer 180 $M train --data $DATA --representation smiles --arch transformer --epochs 1 --limit 5000 --device $DEV --out $W/rt --quiet
step transformer_sample 120 $M sample --model $W/rt -n 500 --device $DEV -o $W/st.smi
step torchrun 180 torchrun --standalone --nproc_per_node 1 -m molgen train --data $DATA --representation selfies --epochs 1 --limit 5000 --device $DEV --out $W/rd --quiet
for m in vae beta-vae cvae dae dcgan wgan-gp cgan sgan vaegan; do
  step image_$m 180 $M image train --model $m --epochs 1 --limit 2000 --device $DEV --out $W/img_$m --quiet
done
step image_evaluate 240 $M image evaluate --model $W/img_vae -o $W/img_eval --n-samples 500
step image_sample 120 $M image sample --model $W/img_cgan -o $W/img_cgan.png
rm -rf "$W"
echo "failed steps: $FAILED"
exit $FAILED
