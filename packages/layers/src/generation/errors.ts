// Errors raised by the generation helpers: bad options, a step that returns the wrong shapes.

export class GenerationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GenerationError';
  }
}
