from voxeron.cli import main

main()
