// The package as users get it: CommonJS and ESM entry points, the TypeScript declarations
// (strict compile of an example, generated from the core's API surface), parity with
// core/api-surface.json, and an `npm pack` tarball installed into a fresh project.
'use strict'

const assert = require('node:assert/strict')
const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('node:test')

const msbimage = require('..')
const { GlobalCache, Platform, Registry } = msbimage
const h = require('./helpers.js')

const surface = JSON.parse(fs.readFileSync(path.join(h.workspace, 'core', 'api-surface.json'), 'utf8'))
const dts = fs.readFileSync(path.join(h.pkg, 'index.d.ts'), 'utf8')

/** A project directory whose node_modules holds this package (linked) and its type deps. */
function project(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msbimage-project-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(h.pkg, path.join(dir, 'node_modules', 'msbimage'))
  fs.symlinkSync(path.join(h.pkg, 'node_modules', '@types'), path.join(dir, 'node_modules', '@types'))
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"p","private":true}\n')
  return dir
}

/** The body of `export interface NAME { … }` in index.d.ts. */
function declaration(name) {
  const m = new RegExp(`export (?:interface|declare interface) ${name}\\b[^{]*\\{([\\s\\S]*?)\\n\\}`).exec(dts)
  assert.ok(m, `index.d.ts declares ${name}`)
  return m[1]
}

test('CommonJS require and ESM import give the same classes', (t) => {
  const dir = project(t)
  const esm = `
    import { Registry, GlobalCache, Platform, parseReference, errorCodes } from 'msbimage'
    import pkg from 'msbimage'
    import { createRequire } from 'node:module'
    const cjs = createRequire(import.meta.url)('msbimage')
    if (Registry !== cjs.Registry || pkg.GlobalCache !== GlobalCache) throw new Error('two copies')
    console.log(parseReference('alpine').reference, Platform.parse('linux/arm64').toString(), errorCodes().length)
  `
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', esm], { cwd: dir, encoding: 'utf8' })
  assert.equal(out.trim(), `docker.io/library/alpine:latest linux/arm64/v8 ${surface.errorKinds.length}`)
  const cjs = execFileSync(process.execPath, ['-e', "console.log(typeof require('msbimage').Registry)"], {
    cwd: dir,
    encoding: 'utf8',
  })
  assert.equal(cjs.trim(), 'function')
})

test('a TypeScript example compiles with tsc --noEmit --strict against index.d.ts', (t) => {
  const dir = project(t)
  for (const f of ['pull.ts', 'tsconfig.json']) fs.copyFileSync(path.join(h.pkg, 'examples', f), path.join(dir, f))
  const tsc = path.join(h.pkg, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', dir, '--noEmit', '--strict'], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  // And a wrong event field is a type error.
  fs.writeFileSync(
    path.join(dir, 'pull.ts'),
    "import type { PullProgress } from 'msbimage'\nexport const f = (e: PullProgress) => e.type === 'resolved' && e.layerIndex\n",
  )
  const bad = spawnSync(process.execPath, [tsc, '-p', dir, '--noEmit', '--strict'], { encoding: 'utf8' })
  assert.notEqual(bad.status, 0)
  assert.match(bad.stdout, /layerIndex/)
})

test('index.d.ts starts with the declarations generated from core/api-surface.json', () => {
  const r = spawnSync(process.execPath, [path.join(h.pkg, 'scripts', 'gen-types.js'), '--check'], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
})

test('parity: every error code of the core, at run time and in the types', () => {
  const codes = msbimage.errorCodes()
  const union = /export type ErrorCode =([\s\S]*?)\n\n/.exec(dts)[1]
  for (const kind of surface.errorKinds) {
    assert.ok(codes.includes(kind.code), `errorCodes() lacks ${kind.code}`)
    assert.ok(union.includes(`'${kind.code}'`), `ErrorCode lacks ${kind.code}`)
  }
  assert.equal(codes.length, surface.errorKinds.length)
})

test('parity: every progress event type and field is in the PullProgress union', () => {
  const union = /export type PullProgress =([\s\S]*?)\n\n/.exec(dts)[1]
  for (const event of surface.events) {
    const name = event.type.charAt(0).toUpperCase() + event.type.slice(1) + 'Event'
    assert.ok(union.includes(name), `PullProgress lacks ${name}`)
    const body = declaration(name)
    assert.ok(body.includes(`type: '${event.type}'`), `${name} is not tagged ${event.type}`)
    for (const field of event.fields) assert.match(body, new RegExp(`\\n  ${field.name}: `), `${name}.${field.name}`)
  }
})

test('parity: every registry setting is accepted by new Registry and typed in RegistryOptions', (t) => {
  const body = declaration('RegistryOptions')
  const cache = new GlobalCache(h.tempCache(t))
  for (const [key, value] of Object.entries(surface.registryConfig.defaults)) {
    assert.match(body, new RegExp(`\\n  ${key}\\?: `), `RegistryOptions.${key}`)
    assert.doesNotThrow(() => new Registry(Platform.hostLinux(), cache, { [key]: value }), key)
  }
  // All at once, exactly the core's defaults.
  new Registry(Platform.hostLinux(), cache, surface.registryConfig.defaults)
})

test('parity: every pull option is accepted by pull and typed in PullOptions', async (t) => {
  const body = declaration('PullOptions')
  const r = new Registry(Platform.hostLinux(), new GlobalCache(h.tempCache(t)))
  for (const [key, value] of Object.entries(surface.pullOptions.defaults)) {
    assert.match(body, new RegExp(`\\n  ${key}\\?: `), `PullOptions.${key}`)
    // Accepted (an unknown key would be INVALID_ARGUMENT); the empty cache then says NOT_CACHED.
    const options = { [key]: value }
    if (key !== 'pullPolicy') options.policy = 'never'
    else options[key] = 'never'
    await assert.rejects(r.pull('localhost:1/never/pulled:latest', options), { code: 'NOT_CACHED' }, key)
  }
  for (const key of ['policy', 'onProgress', 'signal']) assert.match(body, new RegExp(`\\n  ${key}\\?: `), key)
})

test('parity: every cache report type and field is in index.d.ts, every gc policy key typed and accepted', async (t) => {
  for (const report of surface.cacheReports) {
    const head = new RegExp(`export interface ${report.name}( extends (\\w+))? \\{`).exec(dts)
    assert.ok(head, `index.d.ts declares ${report.name}`)
    assert.equal(head[2] ?? null, report.extends, `${report.name} extends`)
    const body = declaration(report.name)
    for (const field of report.fields) assert.match(body, new RegExp(`\\n  ${field.name}: `), `${report.name}.${field.name}`)
  }
  const body = declaration('GcPolicy')
  const cache = new GlobalCache(h.tempCache(t))
  for (const [key, value] of Object.entries(surface.gcPolicy.defaults)) {
    assert.match(body, new RegExp(`\\n  ${key}\\?: `), `GcPolicy.${key}`)
    const report = await cache.gc({ [key]: value })
    assert.deepEqual(report.removedLayers, [], key)
  }
  await cache.gc(surface.gcPolicy.defaults)
})

test('npm pack gives a tarball that installs into a fresh project and works there', (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'msbimage-pack-'))
  t.after(() => fs.rmSync(out, { recursive: true, force: true }))
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const packed = JSON.parse(
    execFileSync(npm, ['pack', '--json', '--pack-destination', out], { cwd: h.pkg, encoding: 'utf8' }),
  )[0]
  const files = packed.files.map((f) => f.path).sort()
  for (const f of ['index.d.ts', 'index.js', 'package.json', 'scripts/install.js']) assert.ok(files.includes(f), f)
  assert.ok(files.some((f) => /^msbimage\..+\.node$/.test(f)), 'the addon is packed')
  assert.ok(!files.some((f) => f.startsWith('src/') || f === 'Cargo.toml'), 'no Rust sources')
  const app = path.join(out, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}\n')
  execFileSync(npm, ['install', '--offline', '--no-audit', '--no-fund', path.join(out, packed.filename)], {
    cwd: app,
    stdio: 'pipe',
  })
  const check = `
    const m = require('msbimage')
    const c = new m.GlobalCache(process.argv[1])
    const r = new m.Registry(m.Platform.hostLinux(), c, { concurrency: 2 })
    r.pull('localhost:1/x:latest', { policy: 'never' }).catch((e) => console.log(e.code, m.version()))
  `
  const res = execFileSync(process.execPath, ['-e', check, path.join(out, 'cache')], { cwd: app, encoding: 'utf8' })
  assert.equal(res.trim(), `NOT_CACHED ${require('../package.json').version}`)
})
