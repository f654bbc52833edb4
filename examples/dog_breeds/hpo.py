# The notebook's training script, in the shape the course's hpo.py has: a ResNet with its backbone
# frozen and a new two-layer head for 133 breeds, train/valid epochs, a test pass that logs
# "Testing Loss:" (the tuner's objective), the model saved to SM_MODEL_DIR.
# What being offline changes: no ImageNet weights to download (weights=None; the seeds used
# pretrained=True), a ResNet-18 on 32-pixel images, and 1 epoch, so that a trial takes seconds on a CPU.
import argparse
import logging
import os
import sys

import torch
import torch.nn as nn
import torch.optim as optim
import torchvision.models as models
import torchvision.transforms as transforms
from torchvision import datasets

logger = logging.getLogger(__name__)
logger.setLevel(logging.DEBUG)
logger.addHandler(logging.StreamHandler(sys.stdout))

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
IMAGE_SIZE = 32
EPOCHS = 1


def test(model, test_loader, criterion):
    model.eval()
    running_loss = 0
    running_corrects = 0
    with torch.no_grad():
        for inputs, labels in test_loader:
            inputs, labels = inputs.to(device), labels.to(device)
            outputs = model(inputs)
            loss = criterion(outputs, labels)
            _, preds = torch.max(outputs, 1)
            running_loss += loss.item() * inputs.size(0)
            running_corrects += torch.sum(preds == labels.data).item()
    # Floor division, as the course's script has it: the objective is a whole number of loss units.
    total_loss = running_loss // len(test_loader)
    total_acc = running_corrects // len(test_loader)
    logger.info(f"Testing Loss: {total_loss}")
    logger.info(f"Testing Accuracy: {total_acc}")


def train(model, train_loader, validation_loader, criterion, optimizer):
    best_loss = 1e6
    loaders = {"train": train_loader, "valid": validation_loader}
    for epoch in range(EPOCHS):
        for phase in ["train", "valid"]:
            model.train() if phase == "train" else model.eval()
            running_loss = 0.0
            running_corrects = 0
            for inputs, labels in loaders[phase]:
                inputs, labels = inputs.to(device), labels.to(device)
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                _, preds = torch.max(outputs, 1)
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data).item()
            epoch_loss = running_loss // len(loaders[phase])
            epoch_acc = running_corrects // len(loaders[phase])
            if phase == "valid" and epoch_loss < best_loss:
                best_loss = epoch_loss
            logger.info(
                f"Epoch {epoch} {phase} loss: {epoch_loss:.4f}, acc: {epoch_acc:.4f}, "
                f"best loss: {best_loss:.4f}"
            )
    return model


def net():
    model = models.resnet18(weights=None)
    for param in model.parameters():
        param.requires_grad = False
    num_features = model.fc.in_features
    model.fc = nn.Sequential(nn.Linear(num_features, 128), nn.ReLU(inplace=True), nn.Linear(128, 133))
    return model


def create_data_loaders(data, batch_size):
    train_transform = transforms.Compose(
        [
            transforms.RandomResizedCrop((IMAGE_SIZE, IMAGE_SIZE)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ]
    )
    test_transform = transforms.Compose([transforms.Resize((IMAGE_SIZE, IMAGE_SIZE)), transforms.ToTensor()])
    train_data = datasets.ImageFolder(os.path.join(data, "train"), transform=train_transform)
    test_data = datasets.ImageFolder(os.path.join(data, "test"), transform=test_transform)
    validation_data = datasets.ImageFolder(os.path.join(data, "valid"), transform=test_transform)
    train_loader = torch.utils.data.DataLoader(train_data, batch_size=batch_size, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_data, batch_size=batch_size)
    validation_loader = torch.utils.data.DataLoader(validation_data, batch_size=batch_size)
    return train_loader, test_loader, validation_loader


def main(args):
    logger.info(f"Hyperparameters are LR: {args.learning_rate}, Batch Size: {args.batch_size}")
    logger.info(f"Data Paths: {args.data_dir}")
    model = net().to(device)
    train_loader, test_loader, validation_loader = create_data_loaders(args.data_dir, args.batch_size)
    criterion = nn.CrossEntropyLoss(ignore_index=133)
    optimizer = optim.Adam(model.fc.parameters(), lr=args.learning_rate)
    logger.info("Starting Model Training")
    model = train(model, train_loader, validation_loader, criterion, optimizer)
    logger.info("Testing Model")
    test(model, test_loader, criterion)
    logger.info("Saving Model")
    torch.save(model.cpu().state_dict(), os.path.join(args.model_dir, "model.pth"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--data_dir", type=str, default=os.environ["SM_CHANNEL_TRAINING"])
    parser.add_argument("--model_dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--output_dir", type=str, default=os.environ["SM_OUTPUT_DATA_DIR"])
    args = parser.parse_args()
    main(args)
