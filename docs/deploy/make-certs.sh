#!/bin/sh
# Certificates and the SASL password for the `secure` compose profile (a test CA, not for production):
#   docs/deploy/make-certs.sh [OUT_DIR]          # default docs/deploy/certs (git-ignored)
# Writes:
#   ca.pem                   the CA clients trust (STREAMER_KAFKA_SSL_CA_FILE)
#   broker.keystore.pem      the broker's PKCS#8 key (encrypted) + certificate, for ssl.keystore.type=PEM (Kafka >= 2.7)
#   broker-key-password.txt  the password of that key (ssl.key.password)
#   kafka-password.txt       the SCRAM-SHA-512 password of user `streamer` (STREAMER_KAFKA_SASL_PASSWORD_FILE)
# The broker certificate names localhost (clients on the host) and kafka-secure (clients in compose).
# Files are readable by all (mode 644): the broker and the workers run as other users in their containers.
set -eu

out="${1:-$(dirname "$0")/certs}"
mkdir -p "$out"
cd "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

random() { openssl rand -hex 24; }

openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 825 -subj "/CN=tradechat-streamer test CA" \
    -keyout "$work/ca.key" -out ca.pem 2>/dev/null

openssl req -new -nodes -newkey rsa:2048 -subj "/CN=kafka-secure" -keyout "$work/broker.key" \
    -out "$work/broker.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:kafka-secure,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/san.ext"
openssl x509 -req -in "$work/broker.csr" -CA ca.pem -CAkey "$work/ca.key" -CAserial "$work/ca.srl" -CAcreateserial \
    -days 825 -sha256 -extfile "$work/san.ext" -out "$work/broker.pem" 2>/dev/null

random > broker-key-password.txt
# Kafka reads PEM keys as (encrypted) PKCS#8; the key and its certificate chain share one keystore file.
openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$work/broker.key" -passout "file:broker-key-password.txt" \
    -out "$work/broker.key.p8"
cat "$work/broker.key.p8" "$work/broker.pem" ca.pem > broker.keystore.pem

[ -s kafka-password.txt ] || random > kafka-password.txt  # kept across runs: the broker stored it at first start
chmod 644 ca.pem broker.keystore.pem broker-key-password.txt kafka-password.txt
echo "wrote $(pwd): ca.pem broker.keystore.pem broker-key-password.txt kafka-password.txt"
