#!/usr/bin/env node
// `npm install` hook: inside the repository (the Rust sources are beside this package) build
// the addon; from a packed tarball, which ships the built addon and no Rust sources, there is
// nothing to do.
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const pkg = path.join(__dirname, '..')
if (fs.existsSync(path.join(pkg, 'Cargo.toml')) && fs.existsSync(path.join(pkg, 'src', 'lib.rs'))) {
  require('./build.js')
} else if (!fs.readdirSync(pkg).some((f) => /^msbimage\..*\.node$/.test(f))) {
  process.stderr.write('msbimage: no prebuilt addon in this package and no Rust sources to build one\n')
  process.exit(1)
}
