from northstar_pipeline.cli import main

main()
