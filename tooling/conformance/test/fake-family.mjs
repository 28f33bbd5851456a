// A synthetic ConformanceFamily for the runner's own tests (in-process and through the CLI's
// --register). Its classes are trivial so that the expected outputs can be written by hand.
import { clone, scope, tensor } from '@lm/tensor-gpu';

/** @type {import('@lm/layers/testing').ConformanceFamily} */
export const conformance = {
  family: 'fake',
  classes: {
    // logits = input_ids * 2 (float), ids = input_ids (int32); with config.w:
    // loss = sum(w * x) (x from inputs.safetensors), grad.w = x.
    FakeDoubler: async (c) =>
      scope(() => {
        const ids = tensor(c.spec.inputs.input_ids, { dtype: 'int32', backend: c.backend });
        const out = new Map([
          ['logits', ids.toFloat().mulScalar(2)],
          ['ids', ids],
        ]);
        if (c.config.w) {
          const w = tensor(c.config.w, { backend: c.backend, requiresGrad: true });
          const loss = w.mul(c.tensorInputs.get('x')).sum();
          loss.backward();
          out.set('loss', loss.detach());
          out.set('grad.w', w.grad);
        }
        return out;
      }),
    // Every tensor input comes back under its own name.
    FakeIdentity: async (c) => scope(() => new Map([...c.tensorInputs].map(([name, t]) => [name, clone(t)]))),
    FakeThrower: async () => {
      throw new Error('boom\nat the second line');
    },
    FakeNotAMap: async () => /** @type {any} */ ({ logits: null }),
    // A tokenizer-like class: ids = the char codes of each text, as host values (`<i>.ids`) and as
    // JSON (`expected_ids[i]`: ids, upper-cased text); config.drop leaves `expected_ids` out.
    FakeCharCodes: async (c) => {
      const items = c.spec.inputs.texts.map((text) => ({ ids: [...text].map((ch) => ch.charCodeAt(0)), upper: text.toUpperCase() }));
      const outputs = new Map(items.map((item, i) => [`${i}.ids`, { shape: [item.ids.length], data: item.ids }]));
      return { outputs, values: c.config.drop ? {} : { expected_ids: items } };
    },
  },
};
