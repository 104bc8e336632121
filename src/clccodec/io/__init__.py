"""Reading and writing files: images in and out (Pillow), atomic writes, stdin/stdout."""
