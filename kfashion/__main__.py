from kfashion.cli import main

main()
