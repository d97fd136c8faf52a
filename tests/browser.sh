#!/usr/bin/env bash
# The approval page in a real browser: starts `cgr-request serve`, asks for two images
# (one also asked for by a second person), takes the approvers' links from the outbox, and
# drives Debian's chromium with playwright-core (tests/browser/approval.mjs) at desktop and
# phone widths: the page's facts, a click on Approve with a reason, the page after, and a
# stale tab's Deny that keeps what was typed. Then checks the stored decisions, rates one,
# and checks `report --html`'s page (tests/browser/report.mjs). Screenshots are kept in
# target/browser/.
# Installs what it needs when missing: chromium (apt-get, as root or through sudo) and
# playwright-core (npm, into tests/browser/node_modules, at the version package-lock pins).
set -euo pipefail
cd "$(dirname "$0")/.."

chromium_bin="${CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$chromium_bin" ]; then
  echo "installing chromium (Debian's package)"
  as_root=""
  [ "$(id -u)" = 0 ] || as_root="sudo"
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium > /dev/null
  chromium_bin=$(command -v chromium)
fi
wanted=$(python3 -c 'import json; print(json.load(open("tests/browser/package-lock.json"))["packages"]["node_modules/playwright-core"]["version"])')
have=$(python3 -c 'import json; print(json.load(open("tests/browser/node_modules/playwright-core/package.json"))["version"])' 2>/dev/null || true)
if [ "$have" != "$wanted" ]; then
  echo "installing playwright-core $wanted into tests/browser/node_modules"
  npm ci --prefix tests/browser --no-audit --no-fund --silent
fi

source tests/serve.sh
start_serve target/browser-serve.log
out=target/browser
rm -rf "$out" && mkdir -p "$out"

two_lines=$'Reporting database for the data team.\nSecond line: kept as written.'
long_word=$(printf 'x%.0s' $(seq 1 300))
ask() { "$bin" -o json "$@" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'; }
a=$(ask add postgres -j "$two_lines $long_word")
b=$(ask add mariadb -j "Orders service")
# A second person asks for the first image: they join it, and the page shows them.
"$bin" --client admin add postgres -j "Analytics needs it too" > /dev/null
for id in "$a" "$b"; do
  for _ in $(seq 1 200); do
    [ "$("$bin" -o json status "$id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')" = pending_approval ] && break
    sleep 0.05
  done
done
links() { # request id, label → the platform admin's link
  local f
  for _ in $(seq 1 100); do
    f=$(grep -l "X-Image-Request-Id: $1" "$IMAGE_REQUEST_DATA_DIR"/outbox/*approval_request-platform-admin*.eml 2> /dev/null | head -1 || true)
    [ -n "$f" ] && break
    sleep 0.05
  done
  grep "^$2:" "$f" | awk '{print $2}'
}
cat > "$out/requests.json" <<JSON
{"org": "example.com",
 "desktop": {"id": "$a", "image": "postgres:latest", "approve": "$(links "$a" Approve)", "deny": "$(links "$a" Deny)"},
 "phone": {"id": "$b", "image": "mariadb:latest", "approve": "$(links "$b" Approve)", "deny": "$(links "$b" Deny)"}}
JSON
CHROMIUM="$chromium_bin" REQUESTS="$out/requests.json" OUT="$out" node tests/browser/approval.mjs

# What the browser clicked is what was stored: who, which way, and the reason as typed.
for pair in "$a:desktop" "$b:phone"; do
  id=${pair%%:*} width=${pair##*:}
  "$bin" -o json status "$id" | WIDTH="$width" python3 -c '
import json, os, sys
r = json.load(sys.stdin)
d = r["decision"]
want = "Fine for the " + os.environ["WIDTH"] + " test.\nSecond line."
assert d["approved"] is True and d["by"] == "email:platform-admin@example.com" and d["channel"] == "email", d
assert d["reason"] == want, (d["reason"], want)
print(r["id"], "stored:", "approved by", d["by"], "with the reason as typed")'
done

# The report of what just happened, as a page: the requester rates the approved request,
# then the admin's report, as JSON and as HTML from the same call, goes to the browser.
for _ in $(seq 1 200); do
  [ "$("$bin" -o json status "$a" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')" = provisioned ] && break
  sleep 0.05
done
"$bin" rate "$a" up --comment "Ready before lunch" > /dev/null
"$bin" -o json report --weeks 2 --html "$out/report.html" > "$out/report.json"
CHROMIUM="$chromium_bin" REPORT="$out/report.json" PAGE="$out/report.html" OUT="$out" node tests/browser/report.mjs
echo "browser test passed; screenshots in $out/"
