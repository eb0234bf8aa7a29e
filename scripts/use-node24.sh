# Source this file: puts Node 24 LTS first on PATH when the machine's Node is older.
# The npm package node@24 ships the official binary; it is cached outside the repo.
_shc_node_dir="${SHC_CACHE:-$HOME/.cache/self-healing-controller}/node24"
_shc_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$_shc_major" -lt 24 ]; then
  if [ ! -x "$_shc_node_dir/node_modules/.bin/node" ]; then
    echo "use-node24: installing node@24 into $_shc_node_dir" >&2
    npm install --no-save --prefix "$_shc_node_dir" node@24 >&2 || return 1 2>/dev/null || exit 1
  fi
  export PATH="$_shc_node_dir/node_modules/.bin:$PATH"
fi
unset _shc_node_dir _shc_major
node --version >&2
