#!/bin/sh
# Compose's one-shot OpenBao setup, DEV ONLY: the transit engine, the keystore's master keys (one
# per service that seals secrets), and a token that may use those keys and nothing else.
#
# OpenBao dev mode keeps everything in memory while Postgres keeps what the keys sealed, so each
# key is backed up to a volume (on every run, which keeps rotations) and restored from there after
# a restart; `docker compose down -v` drops both together. The backups hold the keys in plain
# text, which is why the keys are exportable here and nowhere else.
#
# TRADEMESH_TRANSIT_KEYS: space-separated key names; TRADEMESH_TRANSIT_TOKEN: the token's id.
set -eu

: "${BAO_ADDR:?}" "${BAO_TOKEN:?}" "${TRADEMESH_TRANSIT_KEYS:?}" "${TRADEMESH_TRANSIT_TOKEN:?}"
mount="${TRADEMESH_TRANSIT_MOUNT:-transit}"
backups="${TRADEMESH_TRANSIT_BACKUPS:-/backups}"
policy="trademesh-keystore-$mount"
umask 077

tries=0
until bao status >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "OpenBao at $BAO_ADDR does not answer" >&2; exit 1; }
    sleep 1
done

if ! bao secrets list -format=json | grep -q "\"$mount/\""; then
    bao secrets enable -path="$mount" transit
fi

rules=""
for key in $TRADEMESH_TRANSIT_KEYS; do
    if bao read "$mount/keys/$key" >/dev/null 2>&1; then
        echo "transit key $key: present"
    elif [ -s "$backups/$key" ]; then
        bao write "$mount/restore/$key" backup=@"$backups/$key" >/dev/null
        echo "transit key $key: restored from $backups/$key"
    else
        # derived=true binds each wrap to its record's context (see trademesh_keystore.vault).
        bao write -f "$mount/keys/$key" type=aes256-gcm96 derived=true \
            exportable=true allow_plaintext_backup=true >/dev/null
        echo "transit key $key: created"
    fi
    bao read -field=backup "$mount/backup/$key" >"$backups/$key.tmp"
    mv "$backups/$key.tmp" "$backups/$key"
    # What trademesh_keystore.vault needs, and no `create` on encrypt: a typo in a key name must
    # fail instead of making a new key.
    rules="$rules
path \"$mount/encrypt/$key\" { capabilities = [\"update\"] }
path \"$mount/decrypt/$key\" { capabilities = [\"update\"] }
path \"$mount/rewrap/$key\" { capabilities = [\"update\"] }
path \"$mount/keys/$key\" { capabilities = [\"read\"] }"
done

printf '%s\n' "$rules" | bao policy write "$policy" - >/dev/null
if ! bao token lookup "$TRADEMESH_TRANSIT_TOKEN" >/dev/null 2>&1; then
    bao token create -id="$TRADEMESH_TRANSIT_TOKEN" -policy="$policy" -no-default-policy \
        -orphan -display-name=trademesh-keystore >/dev/null 2>&1
fi
echo "policy $policy and the keystore token: ready"
