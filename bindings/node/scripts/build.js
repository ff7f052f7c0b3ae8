#!/usr/bin/env node
// Builds the addon: `msbimage.<platform>.node`, the loader `index.js` and `index.d.ts` (headed
// by the declarations scripts/gen-types.js makes from the core's API surface).
//
// Cargo is run here and the napi CLI's library makes the typings and the loader from what the
// build emitted (`generateTypeDef`, `writeJsBinding`; the same steps `napi build --platform`
// takes). `napi build` itself always passes `--target <triple>`, which makes cargo compile every
// dependency a second time under target/<triple>/; without it the build shares the workspace's
// target/ with `cargo build`/`cargo test`, so in CI only this crate is compiled again.
//
//   node scripts/build.js            release build of this crate (what users get)
//   node scripts/build.js --debug    debug build, as `cargo build --workspace --features
//                                    microsandbox-image/cli` (the tests' build: testkit, CLI)
// MSBIMAGE_NODE_PROFILE=debug|release chooses the same when run through `npm install`.
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { generateTypeDef, parseTriple, writeJsBinding } = require('@napi-rs/cli')
const { generate } = require('./gen-types.js')

const pkg = path.join(__dirname, '..')
const workspace = path.join(pkg, '..', '..')
const crate = 'msbimage-node'

function hostTriple() {
  const r = spawnSync('rustc', ['-vV'], { encoding: 'utf8' })
  const m = /^host: (\S+)$/m.exec(r.stdout ?? '')
  if (!m) throw new Error(`rustc -vV: ${r.stderr || r.error}`)
  return m[1]
}

async function main() {
  const started = Date.now()
  const debug = process.argv.includes('--debug') || process.env.MSBIMAGE_NODE_PROFILE === 'debug'
  const packageJson = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'))
  const surface = JSON.parse(fs.readFileSync(path.join(workspace, 'core', 'api-surface.json'), 'utf8'))
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(workspace, 'target')
  const typeDefDir = fs.mkdtempSync(path.join(os.tmpdir(), 'msbimage-typedef-'))
  try {
    const cargoArgs = debug
      ? ['build', '--workspace', '--features', 'microsandbox-image/cli']
      : ['build', '--release', '-p', crate]
    const env = {
      ...process.env,
      CARGO_TARGET_DIR: targetDir,
      // napi-derive writes each item's declaration here while compiling; napi-build reruns
      // (so the crate is compiled again) when these change.
      NAPI_TYPE_DEF_TMP_FOLDER: typeDefDir,
      [`NAPI_FORCE_BUILD_${crate.replace(/-/g, '_').toUpperCase()}`]: String(Date.now()),
    }
    const cargo = spawnSync('cargo', cargoArgs, { stdio: 'inherit', env, cwd: workspace })
    if (cargo.status !== 0) process.exit(cargo.status ?? 1)

    const { platformArchABI } = parseTriple(hostTriple())
    const lib = path.join(targetDir, debug ? 'debug' : 'release', `lib${crate.replace(/-/g, '_')}.so`)
    const addon = path.join(pkg, `${packageJson.napi.binaryName}.${platformArchABI}.node`)
    fs.rmSync(addon, { force: true }) // a new inode: a running process keeps its mapping
    fs.copyFileSync(lib, addon)

    const { exports, dts } = await generateTypeDef({
      typeDefDir,
      dtsHeader: generate(surface),
      cwd: pkg,
      declareBindingTarget: true,
    })
    fs.writeFileSync(path.join(pkg, 'index.d.ts'), dts)
    await writeJsBinding({
      platform: true,
      idents: exports,
      binaryName: packageJson.napi.binaryName,
      packageName: packageJson.name,
      version: packageJson.version,
      outputDir: pkg,
    })
  } finally {
    fs.rmSync(typeDefDir, { recursive: true, force: true })
  }
  process.stderr.write(
    `msbimage: built the ${debug ? 'debug' : 'release'} addon in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  )
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
