#!/usr/bin/env node
// lm-conformance (`pnpm conformance` at the repository root): runs parity-fixture cases against the
// project's implementations. The case format and this command's contract are in
// ../shared/fixtures/README.md: one PASS/FAIL line per case, then exactly `N passed, M failed`.
//
// Exit status: 0 every case passed (and at least one ran); 1 a case failed, or none ran; 2 usage or
// registry error; 3 the requested backend is not available (e.g. no WebGPU adapter).

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { init } from '@lm/tensor-gpu';
import type { Backend } from '@lm/tensor-gpu';
import type { ConformanceFamily } from '@lm/layers/testing';
import { classTable, familyOf, loadFamilies, RegistryError } from './registry.js';
import { runConformance } from './run.js';
import { fmtNum } from './compare.js';

interface CliOptions {
  backend: 'cpu' | 'webgpu';
  filter?: string;
  register: string[];
  verbose?: boolean;
  listClasses?: boolean;
}

const EXIT_USAGE = 2;
const EXIT_NO_BACKEND = 3;

const program = new Command()
  .name('pnpm conformance')
  .description(
    'Run parity-fixture cases (the ../shared/fixtures format) on the project\'s implementations.\n' +
      'Each <dir> is a family folder (every case folder below it, i.e. every folder with a case.json) or one case folder.',
  )
  .argument('[dirs...]', 'family folders or case folders')
  .addOption(new Option('-b, --backend <backend>', 'compute backend').choices(['cpu', 'webgpu']).default('cpu'))
  .option('-f, --filter <substring>', 'only cases whose <family>/<case> name contains this')
  .option(
    '--register <module>',
    'also load the `conformance` export (a ConformanceFamily) of this module: a path or a package name; repeatable',
    (value: string, prev: string[]) => [...prev, value],
    [] as string[],
  )
  .option('-v, --verbose', 'print every output\'s max abs error and the stack of thrown errors (on stderr)')
  .option('--list-classes', 'print the registered classes and their families, then exit')
  .exitOverride()
  .action(async (dirs: string[], opts: CliOptions) => {
    process.exitCode = await main(dirs, opts);
  });

async function loadRegistered(specs: readonly string[]): Promise<ConformanceFamily[]> {
  const out: ConformanceFamily[] = [];
  for (const spec of specs) {
    const isPath = spec.startsWith('.') || spec.startsWith('/') || /^[A-Za-z]:[\\/]/.test(spec);
    let mod: unknown;
    try {
      mod = await import(isPath ? pathToFileURL(resolve(spec)).href : spec);
    } catch (e) {
      throw new RegistryError(`--register ${spec}: cannot import it: ${e instanceof Error ? e.message : String(e)}`);
    }
    const family = familyOf(mod, `--register ${spec}`);
    if (!family) throw new RegistryError(`--register ${spec}: the module has no \`conformance\` export`);
    out.push(family);
  }
  return out;
}

async function main(dirs: string[], opts: CliOptions): Promise<number> {
  let families: ConformanceFamily[];
  try {
    families = [...(await loadFamilies()), ...(await loadRegistered(opts.register))];
    classTable(families); // duplicate classes are an error before anything runs
  } catch (e) {
    console.error(`conformance: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_USAGE;
  }

  if (opts.listClasses) {
    for (const f of families) for (const cls of Object.keys(f.classes)) console.log(`${cls}\t${f.family}`);
    if (families.length === 0) console.log('(no family registers any class yet)');
    return 0;
  }
  if (dirs.length === 0) {
    console.error('conformance: give at least one family folder or case folder (see --help)');
    return EXIT_USAGE;
  }

  let backend: Backend;
  try {
    backend = await init(opts.backend);
  } catch (e) {
    console.error(`conformance: --backend ${opts.backend} is not available: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_NO_BACKEND;
  }
  const names = families.map((f) => f.family);
  console.error(
    `conformance: backend ${backend.name}${backend.adapterInfo ? ` (${backend.adapterInfo})` : ''}; ` +
      `families: ${names.length ? names.join(', ') : 'none registered'}`,
  );

  try {
    const run = await runConformance({
      families,
      backend,
      dirs,
      filter: opts.filter,
      onResult: (r) => {
        console.log(r.line);
        if (opts.verbose) {
          for (const c of r.outputs) console.error(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name} maxabs=${fmtNum(c.maxAbs)}${c.reason ? `: ${c.reason}` : ''}`);
          if (r.error instanceof Error && r.error.stack) console.error(r.error.stack.replace(/^/gm, '  '));
        }
      },
    });
    console.log(run.summary);
    return run.exitCode;
  } finally {
    backend.destroy();
  }
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; commander has already printed usage errors.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    console.error(`conformance: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = EXIT_USAGE;
  }
}
