"""One build, step by step: render, compile, plan, then the pipeline that runs them and publishes."""
