#!/usr/bin/env node
// Builds the addon with the napi CLI: `msbimage.<platform>.node`, the loader `index.js` and
// `index.d.ts` (headed by the declarations scripts/gen-types.js makes from the core's API
// surface). Inside the repository the build shares the workspace's `target/` directory, so it
// reuses what `cargo build --workspace` already compiled.
//
//   node scripts/build.js            release build (what users get)
//   node scripts/build.js --debug    debug build (the test suite's default in CI: shares
//                                    target/debug with `cargo test --workspace`)
// MSBIMAGE_NODE_PROFILE=debug|release chooses the same when run through `npm install`.
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { generate } = require('./gen-types.js')

const pkg = path.join(__dirname, '..')
const workspace = path.join(pkg, '..', '..')

function main() {
  const debug =
    process.argv.includes('--debug') || process.env.MSBIMAGE_NODE_PROFILE === 'debug'
  const surface = JSON.parse(
    fs.readFileSync(path.join(workspace, 'core', 'api-surface.json'), 'utf8'),
  )
  const header = generate(surface)
  const env = { ...process.env }
  if (!env.CARGO_TARGET_DIR) env.CARGO_TARGET_DIR = path.join(workspace, 'target')
  // The CLI's `bin` (its package exports do not list it).
  const napi = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')
  const args = [
    napi,
    'build',
    '--platform',
    '--manifest-path',
    path.join(pkg, 'Cargo.toml'),
    '--package-json-path',
    path.join(pkg, 'package.json'),
    '--output-dir',
    pkg,
    '--dts-header',
    header,
    '--no-dts-cache',
  ]
  if (!debug) args.push('--release')
  const started = Date.now()
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', env, cwd: pkg })
  if (r.status !== 0) process.exit(r.status ?? 1)
  process.stderr.write(
    `msbimage: built the ${debug ? 'debug' : 'release'} addon in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  )
}

main()
