[
  inputs: ["{mix,.formatter}.exs", "{config,lib,test,examples,bench}/**/*.{ex,exs}"],
  locals_without_parens: [ctest: 2, ctest: 3],
  export: [locals_without_parens: [ctest: 2, ctest: 3]]
]
