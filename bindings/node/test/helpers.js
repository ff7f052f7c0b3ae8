// Shared by the test files: the loopback test registry (msbimage-testkit serve), a small
// registry written here that serves crafted images (slow, corrupt, hostile, unsupported), temp
// caches, and the Rust CLI. Nothing here talks to anything but 127.0.0.1.
'use strict'

const { spawn, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const zlib = require('node:zlib')

const pkg = path.join(__dirname, '..')
const workspace = path.join(pkg, '..', '..')
const targetDir = process.env.CARGO_TARGET_DIR || path.join(workspace, 'target')
const testkit = process.env.MSB_TESTKIT || path.join(targetDir, 'debug', 'msbimage-testkit')
const cli = process.env.MSB_CLI || path.join(targetDir, 'debug', 'msbimage')

/** Starts `msbimage-testkit serve --push-fixtures ...args`; resolves with its JSON line. */
function startTestkit(...args) {
  return new Promise((resolve, reject) => {
    const child = spawn(testkit, ['serve', '--push-fixtures', ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    child.on('error', (e) =>
      reject(new Error(`start ${testkit} (cargo build -p msbimage-testkit): ${e.message}`)),
    )
    const lines = readline.createInterface({ input: child.stdout })
    lines.once('line', (line) => {
      const info = JSON.parse(line)
      info.stop = () =>
        new Promise((done) => {
          child.once('exit', done)
          child.stdin.end() // the testkit exits when its stdin closes
        })
      resolve(info)
    })
    child.once('exit', (code) => reject(new Error(`testkit exited with ${code} before printing`)))
  })
}

/** A fresh cache directory, removed when the process exits. */
function tempCache(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msbimage-node-'))
  if (t) t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The entries left in a cache's `tmp/` (staging directories). */
function tmpEntries(cache) {
  try {
    return fs.readdirSync(path.join(cache, 'tmp'))
  } catch (e) {
    if (e.code === 'ENOENT') return []
    throw e
  }
}

/** Runs the Rust CLI; returns its parsed `--json` output (or `{ error }`) and exit status. */
function runCli(args) {
  const r = spawnSync(cli, args, { encoding: 'utf8' })
  if (r.error) throw new Error(`run ${cli} (cargo build --features microsandbox-image/cli): ${r.error.message}`)
  const out = r.stdout.trim()
  return { status: r.status, json: out ? JSON.parse(out) : null, stderr: r.stderr }
}

// ---- a registry serving crafted images --------------------------------------------------

function sha256(buf) {
  return 'sha256:' + crypto.createHash('sha256').update(buf).digest('hex')
}

/** A ustar archive of `entries` ({ name, data?, type? ('0' file, '5' dir) }). */
function tar(entries) {
  const blocks = []
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '')
    const h = Buffer.alloc(512)
    h.write(e.name, 0, 100, 'utf8')
    h.write((e.mode ?? (e.type === '5' ? 0o755 : 0o644)).toString(8).padStart(7, '0') + '\0', 100)
    h.write('0000000\0', 108)
    h.write('0000000\0', 116)
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124)
    h.write('00000000000\0', 136)
    h.write('        ', 148)
    h.write(e.type ?? '0', 156)
    h.write('ustar\0', 257)
    h.write('00', 263)
    let sum = 0
    for (const b of h) sum += b
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

/**
 * An image: `layers` are tar buffers (gzipped here). Returns { manifest, config, blobs }
 * ready to serve. `corrupt` flips a byte of the first layer blob after its digest was taken.
 */
function image(layers, { corrupt = false, mediaType } = {}) {
  const blobs = new Map()
  const diffIds = layers.map(sha256)
  const layerDescs = layers.map((t) => {
    const gz = zlib.gzipSync(t)
    const digest = sha256(gz)
    blobs.set(digest, gz)
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: gz.length }
  })
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  )
  const configDigest = sha256(config)
  blobs.set(configDigest, config)
  if (corrupt) {
    const first = layerDescs[0].digest
    const bad = Buffer.from(blobs.get(first))
    bad[bad.length >> 1] ^= 0xff
    blobs.set(first, bad)
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layerDescs,
    }),
  )
  return { manifest, manifestType: mediaType ?? 'application/vnd.oci.image.manifest.v1+json', blobs }
}

/**
 * Serves `images` (name → image()) on 127.0.0.1. Blobs listed in `slow` are sent in
 * `chunk`-byte pieces every `intervalMs` (a pull that takes a while, for abort and event-loop
 * tests). Resolves with { host, close() }.
 */
function craftedRegistry(images, { slow = new Set(), chunk = 4096, intervalMs = 20 } = {}) {
  const sockets = new Set()
  const server = http.createServer((req, res) => {
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(req.url)
    if (req.url === '/v2/' || req.url === '/v2') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}')
      return
    }
    if (!m || !images[m[1]]) {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}')
      return
    }
    const img = images[m[1]]
    if (m[2] === 'manifests') {
      res.writeHead(200, {
        'Content-Type': img.manifestType,
        'Content-Length': img.manifest.length,
        'Docker-Content-Digest': sha256(img.manifest),
      })
      res.end(req.method === 'HEAD' ? undefined : img.manifest)
      return
    }
    const blob = img.blobs.get(m[3])
    if (!blob) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.length })
    if (req.method === 'HEAD') return res.end()
    if (!slow.has(m[3])) return res.end(blob)
    let offset = 0
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer)
      res.write(blob.subarray(offset, offset + chunk))
      offset += chunk
      if (offset >= blob.length) {
        clearInterval(timer)
        res.end()
      }
    }, intervalMs)
    res.on('close', () => clearInterval(timer))
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        host: `127.0.0.1:${server.address().port}`,
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy()
            server.close(done)
          }),
      })
    })
  })
}

/** `size` bytes that gzip poorly (so a slow blob stays large). */
function noise(size, seed = 1) {
  const out = Buffer.alloc(size)
  let x = seed
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

module.exports = {
  pkg,
  workspace,
  cli,
  startTestkit,
  tempCache,
  tmpEntries,
  runCli,
  tar,
  image,
  craftedRegistry,
  noise,
  sha256,
}
