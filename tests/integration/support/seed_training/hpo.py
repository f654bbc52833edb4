# A training script in the seeds' style (the dog-breed project's hpo.py), kept small enough for a test:
# SM_* defaults read at parse time, --learning_rate, floor-divided losses, a "Testing Loss:" line.
import argparse
import logging
import os
import sys

import torch
import torch.nn as nn
import torch.optim as optim
import torchvision.transforms as transforms
from torchvision import datasets

logger = logging.getLogger(__name__)
logger.setLevel(logging.DEBUG)
logger.addHandler(logging.StreamHandler(sys.stdout))


def test(model, test_loader, criterion):
    model.eval()
    running_loss = 0
    running_corrects = 0
    for inputs, labels in test_loader:
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        _, preds = torch.max(outputs, 1)
        running_loss += loss.item() * inputs.size(0)
        running_corrects += torch.sum(preds == labels.data)
    total_loss = running_loss // len(test_loader)
    total_acc = running_corrects.double() // len(test_loader)
    logger.info(f"Testing Loss: {total_loss}")
    logger.info(f"Testing Accuracy: {total_acc}")


def train(model, train_loader, criterion, optimizer, epochs):
    for epoch in range(epochs):
        model.train()
        running_loss = 0
        for inputs, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * inputs.size(0)
        logger.info(f"Epoch {epoch}: Train Loss {running_loss / len(train_loader.dataset):.4f}")
    return model


def net(num_classes):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, num_classes),
    )


def create_data_loaders(data, batch_size):
    transform = transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor()])
    train_data = datasets.ImageFolder(os.path.join(data, "train"), transform=transform)
    test_data = datasets.ImageFolder(os.path.join(data, "test"), transform=transform)
    return (
        torch.utils.data.DataLoader(train_data, batch_size=batch_size, shuffle=True),
        torch.utils.data.DataLoader(test_data, batch_size=batch_size),
        len(train_data.classes),
    )


def main(args):
    logger.info(f"Hyperparameters: learning rate {args.learning_rate}, batch size {args.batch_size}")
    train_loader, test_loader, classes = create_data_loaders(args.data_dir, args.batch_size)
    model = net(classes)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.learning_rate)
    model = train(model, train_loader, criterion, optimizer, args.epochs)
    test(model, test_loader, criterion)
    torch.save(model.state_dict(), os.path.join(args.model_dir, "model.pth"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data_dir", type=str, default=os.environ["SM_CHANNEL_TRAINING"])
    parser.add_argument("--model_dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--output_dir", type=str, default=os.environ["SM_OUTPUT_DATA_DIR"])
    main(parser.parse_args())
