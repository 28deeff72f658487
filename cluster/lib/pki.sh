# Certificates for the cluster, made with openssl (sourced by up.sh). A fresh CA per cluster:
# down.sh deletes the state dir, so nothing outlives the cluster that trusted it.
# shellcheck shell=bash

_pki_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# _pki_cert NAME SUBJECT EXT_KEY_USAGE [SAN]: key + cert signed by the cluster CA.
_pki_cert() {
  local name=$1 subj=$2 eku=$3 san=${4:-}
  local ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$eku"
  [[ -n $san ]] && ext+=$'\n'"subjectAltName=$san"
  _pki_key "$PKI_DIR/$name.key"
  openssl req -new -key "$PKI_DIR/$name.key" -subj "$subj" -out "$PKI_DIR/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
    -extfile <(printf '%s\n' "$ext") -out "$PKI_DIR/$name.crt" 2>/dev/null
  rm -f "$PKI_DIR/$name.csr"
}

pki_generate() {
  local old_umask
  old_umask=$(umask)
  umask 077
  mkdir -p "$PKI_DIR"
  _pki_key "$PKI_DIR/ca.key"
  openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=paddock-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI_DIR/ca.crt" 2>/dev/null
  _pki_cert apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$DNS_DOMAIN,DNS:localhost,IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODE_IP"
  _pki_cert kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth \
    "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
  _pki_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  _pki_cert admin "/O=system:masters/CN=paddock-admin" clientAuth
  _pki_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  _pki_cert scheduler "/CN=system:kube-scheduler" clientAuth
  _pki_cert kube-proxy "/CN=system:kube-proxy" clientAuth
  _pki_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  # Service-account token signing key pair (RSA: every token consumer understands RS256).
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI_DIR/sa.key" 2>/dev/null
  openssl pkey -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
  umask "$old_umask"
}
