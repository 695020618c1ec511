#!/usr/bin/env bash
# Test certificates for the API's mutual TLS, in DIR: a CA (ca.pem), the node's
# certificate for 127.0.0.1 / localhost (server.pem, server.key), a client signed by the
# CA (client.pem, client.key) and one signed by another CA (rogue.pem, rogue.key).
# Keys are mode 0600. Fails loudly (openssl is Debian's, installed by scripts/setup.sh).
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # NAME
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # NAME CA EXTENSIONS
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
        -out "$1.pem" -days 2 -extfile <(printf '%s\n' "$3") 2>/dev/null
    rm -f "$1.csr"
}
ca ca
ca otherca
leaf server ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
leaf client ca "extendedKeyUsage=clientAuth"
leaf rogue otherca "extendedKeyUsage=clientAuth"
chmod 644 ./*.pem
