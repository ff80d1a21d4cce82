#!/bin/sh
# Writes a throw-away test PKI into DIR (generated at test time, never committed): a CA
# (ca.pem), an RSA leaf for localhost/127.0.0.1 (rsa.pem; key as PKCS#8 rsa.key and PKCS#1
# rsa-pkcs1.key; rsa-chain.pem is the leaf followed by the CA) and an EC P-256 leaf (ec.pem;
# key as SEC1 ec-sec1.key and PKCS#8 ec.key).
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
quiet() { "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; }
quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days 2 -subj "/CN=Hyperion Test CA"
cat > leaf.ext <<EXT
subjectAltName=DNS:localhost,IP:127.0.0.1
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
EXT
quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key
quiet openssl rsa -in rsa.key -traditional -out rsa-pkcs1.key
quiet openssl req -new -key rsa.key -subj /CN=localhost -out rsa.csr
quiet openssl x509 -req -in rsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile leaf.ext -out rsa.pem
cat rsa.pem ca.pem > rsa-chain.pem
quiet openssl ecparam -name prime256v1 -genkey -noout -out ec-sec1.key
quiet openssl pkcs8 -topk8 -nocrypt -in ec-sec1.key -out ec.key
quiet openssl req -new -key ec-sec1.key -subj /CN=localhost -out ec.csr
quiet openssl x509 -req -in ec.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile leaf.ext -out ec.pem
rm -f rsa.csr ec.csr leaf.ext
