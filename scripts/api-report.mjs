// The public API report: every export of the package's entry point with its type, as the
// compiler sees it in dist/src/index.d.ts. `npm run api:update` rewrites api/glimpse.api.txt;
// test/api.test.ts fails when the surface changes without that file changing with it.
import ts from 'typescript';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const reportPath = join(root, 'api', 'glimpse.api.txt');

export function apiReport() {
  const entry = join(root, 'dist', 'src', 'index.d.ts');
  const program = ts.createProgram([entry], { types: ['node'], skipLibCheck: true, target: ts.ScriptTarget.ES2022 });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  if (!file) throw new Error(`api-report: ${entry} not found; run the build first`);
  const flags = ts.TypeFormatFlags.NoTruncation;
  const lines = [];
  const describe = (sym, prefix) => {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    const name = prefix + sym.getName();
    const decl = target.declarations?.[0];
    if (target.flags & ts.SymbolFlags.Class) {
      lines.push(`class ${name}`);
      const type = checker.getDeclaredTypeOfSymbol(target);
      for (const m of checker.getPropertiesOfType(type)) {
        const d = m.valueDeclaration ?? m.declarations?.[0];
        if (!d || m.getName().startsWith('_') || m.getName().startsWith('#') ||
          ts.getCombinedModifierFlags(d) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
        lines.push(`  ${m.getName()}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(m, d), undefined, flags)}`);
      }
      const ctorType = checker.getTypeOfSymbolAtLocation(target, decl);
      for (const sig of ctorType.getConstructSignatures()) lines.push(`  new${checker.signatureToString(sig, undefined, flags)}`);
      for (const m of checker.getPropertiesOfType(ctorType)) {
        if (m.getName() === 'prototype') continue;
        const d = m.valueDeclaration ?? m.declarations?.[0];
        if (d) lines.push(`  static ${m.getName()}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(m, d), undefined, flags)}`);
      }
    } else if (target.flags & ts.SymbolFlags.Interface) {
      lines.push(`interface ${name}`);
      for (const m of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(target))) {
        const d = m.valueDeclaration ?? m.declarations?.[0];
        const optional = m.flags & ts.SymbolFlags.Optional ? '?' : '';
        if (d) lines.push(`  ${m.getName()}${optional}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(m, d), undefined, flags)}`);
      }
    } else if (target.flags & ts.SymbolFlags.TypeAlias) {
      lines.push(`type ${name} = ${checker.typeToString(checker.getDeclaredTypeOfSymbol(target), undefined, flags | ts.TypeFormatFlags.InTypeAlias)}`);
    } else if (target.flags & (ts.SymbolFlags.Module | ts.SymbolFlags.Namespace) && !(target.flags & ts.SymbolFlags.Value & ~ts.SymbolFlags.Module)) {
      lines.push(`namespace ${name}`);
      for (const e of checker.getExportsOfModule(target).sort((a, b) => a.getName().localeCompare(b.getName()))) describe(e, `${name}.`);
    } else if (decl) {
      lines.push(`const ${name}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(target, decl), undefined, flags)}`);
    }
  };
  const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(file));
  for (const sym of exports.sort((a, b) => a.getName().localeCompare(b.getName()))) describe(sym, '');
  // Absolute paths in import("...") types depend on the checkout's location.
  return lines.map((l) => l.split(root).join('<root>')).join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(reportPath, apiReport());
  console.log(`wrote ${reportPath}`);
}

export function currentReport() {
  return readFileSync(reportPath, 'utf8');
}
