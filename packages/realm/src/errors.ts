// The error of the realm package: bad input to a model, the retriever, an index or the QA pipeline,
// raised before any work with what was wrong and where.

export class RealmError extends Error {
  override name = 'RealmError';
}
