# Installs the template and Lambda build tools, each in its own virtualenv
# (checkov pins old versions of the others). Source it; do not run it.
INFRA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INFRA_VENV="$INFRA_ROOT/.venv-infra"
CHECKOV_VENV="$INFRA_ROOT/.venv-checkov"

infra_tools_install() {
  if [ ! -x "$INFRA_VENV/bin/sam" ] || [ ! -x "$INFRA_VENV/bin/cfn-lint" ] || [ ! -x "$INFRA_VENV/bin/cargo-lambda" ]; then
    python3 -m venv "$INFRA_VENV"
    "$INFRA_VENV/bin/pip" install -q --disable-pip-version-check cfn-lint aws-sam-cli cargo-lambda
  fi
  if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
    python3 -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check checkov
  fi
  export PATH="$INFRA_VENV/bin:$PATH"
}
